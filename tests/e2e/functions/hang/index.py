"""Never returns on its own: payload['how'] picks the way it hangs."""
import subprocess
import time


def main(req, res):
    how = req.payload.get('how', 'spin')
    if how in ('child', 'setsid_child'):
        # A unique argument lets the test find the child from outside any pid namespace.
        subprocess.Popen(['sleep', req.payload['sleep_arg']],
                         start_new_session=(how == 'setsid_child'))
    if how == 'sleep':
        time.sleep(1000)
    while True:
        pass
