/* commands.h -- the sub-commands, each in its own cmd_*.c. argv[0] is the first
 * argument after the sub-command's name. Each returns the process exit status. */
#ifndef PYRT_COMMANDS_H
#define PYRT_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_launch(int argc, char **argv);
int cmd_pack(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_call(int argc, char **argv);
int cmd_zygote(int argc, char **argv);

#endif
