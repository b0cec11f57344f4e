"""The analysis (ratios, % of the ceiling, the targets) and the three reports:
latest.json, latest.tsv and latest.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pyrtbench.config import (ALL_SERVERS, FRESH_TARGET_MS, IO_HEADER, IO_SERVERS, IO_WAIT_MS,
                              STALL_MS, V5_SERVERS)
from pyrtbench.settings import Settings, size_label


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return a / b


def get(d: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def fmt(v: Optional[float], spec: str = ".0f", suffix: str = "") -> str:
    return "–" if v is None else f"{v:{spec}}{suffix}"


V5_RATIOS = (("pyrt-v5", "openruntimes-v5"), ("pyrt-v5", "pyrt"))


def v5_ratios(results: dict[str, dict[str, Any]], concs: list[str]) -> dict[str, Any]:
    """pyrt-v5 over open-runtimes' server, and over pyrt's seed contract: req/s, p99 and
    CPU per request at each concurrency, cold start and PSS after load."""
    out: dict[str, Any] = {}
    for a, b in V5_RATIOS:
        if a not in results or b not in results:
            continue
        ra, rb = results[a], results[b]
        rr: dict[str, Any] = {}
        for c in concs:
            for key, path in (("rps", ("rps", "median")), ("p99", ("p99_ms",)),
                              ("cpu", ("cpu_us_per_req",))):
                rr[f"{key}_c{c}"] = ratio(get(ra, "throughput", c, *path),
                                          get(rb, "throughput", c, *path))
        rr["cold_start"] = ratio(get(ra, "cold_start_ms", "median"),
                                 get(rb, "cold_start_ms", "median"))
        rr["pss_after_load"] = ratio(get(ra, "pss_after_load_kib"),
                                     get(rb, "pss_after_load_kib"))
        out[f"{a}/{b}"] = rr
    return out


IO_PYRT = "pyrt-v5"
IO_TARGET_CONNS = "64"


def io_ideal_rps(conns: str) -> float:
    """What the I/O-bound function allows at most: every connection always waiting."""
    return int(conns) * 1000 / IO_WAIT_MS


def io_analysis(results: dict[str, dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """The I/O-bound function: the ideal at each concurrency, pyrt-v5 over the best of
    the others there (req/s and p99), and issue 19's target (c=64, at least the best)."""
    out: dict[str, Any] = {"wait_ms": IO_WAIT_MS, "ideal_rps": {}, "vs_best": {},
                           "target": None}
    for c in (str(c) for c in settings.io_concurrency):
        out["ideal_rps"][c] = io_ideal_rps(c)
        rps: dict[str, float] = {}
        for n in IO_SERVERS:
            v = get(results, n, "io", c, "rps", "median")
            if n != IO_PYRT and v is not None:
                rps[n] = v
        best = max(rps, key=rps.__getitem__) if rps else None
        mine = get(results, IO_PYRT, "io", c)
        out["vs_best"][c] = {
            "best": best,
            "rps": ratio(get(mine or {}, "rps", "median"), rps.get(best or "")),
            "p99": ratio(get(mine or {}, "p99_ms"), get(results, best or "", "io", c, "p99_ms")),
        }
    x = get(out, "vs_best", IO_TARGET_CONNS, "rps")
    if IO_TARGET_CONNS in out["vs_best"]:
        out["target"] = {"conns": int(IO_TARGET_CONNS), "value": x, "goal": "≥ 1.0x",
                         "ok": None if x is None else x >= 1.0}
    return out


def analyse(results: dict[str, dict[str, Any]], settings: Settings) -> dict[str, Any]:
    """Ratios pyrt/anchor, % of the ceiling, and the issue's targets."""
    out: dict[str, Any] = {"ratios": {}, "pct_of_ceiling": {}, "targets": []}
    concs = [str(c) for c in settings.concurrency]
    for name, r in results.items():
        pct = {}
        for c in concs:
            v = get(r, "throughput", c, "rps", "median")
            ceil = get(results, "ceiling", "throughput", c, "rps", "median")
            x = ratio(v, ceil)
            pct[c] = x * 100 if x is not None else None
        out["pct_of_ceiling"][name] = pct
    out["v5"] = v5_ratios(results, concs)
    out["io"] = io_analysis(results, settings)
    if "pyrt" not in results:
        return out
    p = results["pyrt"]
    for name, r in results.items():
        if name == "pyrt":
            continue
        rr: dict[str, Any] = {}
        for c in concs:
            rr[f"rps_c{c}"] = ratio(get(p, "throughput", c, "rps", "median"),
                                    get(r, "throughput", c, "rps", "median"))
            rr[f"p99_c{c}"] = ratio(get(p, "throughput", c, "p99_ms"),
                                    get(r, "throughput", c, "p99_ms"))
            rr[f"cpu_c{c}"] = ratio(get(p, "throughput", c, "cpu_us_per_req"),
                                    get(r, "throughput", c, "cpu_us_per_req"))
        rr["cold_start"] = ratio(get(p, "cold_start_ms", "median"),
                                 get(r, "cold_start_ms", "median"))
        rr["pss_after_load"] = ratio(get(p, "pss_after_load_kib"), get(r, "pss_after_load_kib"))
        out["ratios"][name] = rr

    targets: list[dict[str, Any]] = out["targets"]

    def target(what: str, value: Optional[float], ok: Optional[bool], goal: str,
               shown: str) -> None:
        targets.append({"target": what, "goal": goal, "value": value,
                        "shown": shown, "ok": ok})

    for c in ("16", "64"):
        v = get(p, "throughput", c, "rps", "median")
        best = [get(results, a, "throughput", c, "rps", "median") for a in ("uwsgi", "uvicorn")]
        best_v = max((b for b in best if b is not None), default=None)
        x = ratio(v, best_v)
        target(f"c={c} throughput vs best of uWSGI, uvicorn", x,
               None if x is None else x >= 1.2, "≥ 1.2x", fmt(x, ".2f", "x"))
        pc = out["pct_of_ceiling"]["pyrt"].get(c)
        target(f"c={c} throughput, % of the C ceiling", pc,
               None if pc is None else pc >= 40, "≥ 40%", fmt(pc, ".0f", "%"))
        x = ratio(v, get(results, "flask", "throughput", c, "rps", "median"))
        target(f"c={c} throughput vs seed Flask", x, None if x is None else x >= 30,
               "≥ 30x", fmt(x, ".0f", "x"))
    c64 = str(settings.fairness_conns)
    rps64 = get(p, "throughput", c64, "rps", "median")
    p99 = get(p, "throughput", c64, "p99_ms")
    if rps64 and p99 is not None:
        implied = int(c64) / rps64 * 1000
        target(f"c={c64} p99 vs implied mean latency ({c64} / req/s = {implied:.2f} ms)",
               p99 / implied, p99 < 2 * implied, "< 2x", f"{p99:.2f} ms = {p99 / implied:.2f}x")
    else:
        target(f"c={c64} p99 vs implied mean latency", None, None, "< 2x", "–")
    fresh_max = get(p, "fairness", "fresh_ms", "max")
    fresh_failed = get(p, "fairness", "fresh_failed")
    ok = None if fresh_max is None else fresh_max < FRESH_TARGET_MS and not fresh_failed
    target("fresh client under load (max)", fresh_max, ok, f"< {FRESH_TARGET_MS:.0f} ms",
           fmt(fresh_max, ".1f", " ms") + (f", {fresh_failed} failed" if fresh_failed else ""))
    st = get(p, "fairness", "stalled")
    target(f"wrk connections stalled > {STALL_MS} ms", st, None if st is None else st == 0,
           "0", fmt(st, "d"))
    cold = get(p, "cold_start_ms", "median")
    x = ratio(cold, get(results, "ceiling", "cold_start_ms", "median"))
    target("cold start vs C ceiling", x, None if x is None else x <= 2, "≤ 2x",
           fmt(cold, ".0f", " ms") + f" = {fmt(x, '.1f', 'x')}")
    x = ratio(cold, get(results, "uwsgi", "cold_start_ms", "median"))
    target("cold start vs uWSGI", x, None if x is None else x < 0.5, "< 0.5x", fmt(x, ".2f", "x"))
    pss = get(p, "pss_after_load_kib")
    target(f"PSS with {settings.workers} workers after load", pss,
           None if pss is None else pss < 20 * 1024, "< 20 MiB",
           fmt(pss and pss / 1024, ".1f", " MiB"))
    per = get(p, "pss_per_worker_kib")
    target("PSS per extra worker", per, None if per is None else per < 4 * 1024, "< 4 MiB",
           fmt(per and per / 1024, ".2f", " MiB"))
    late = get(p, "runaway", "late_ms", "max")
    answered = get(p, "runaway", "answered")
    runs = len(get(p, "runaway", "runs") or [])
    target("runaway answered after its deadline (max)", late,
           None if late is None else late <= 50 and answered == runs, "≤ 50 ms",
           fmt(late, ".1f", " ms") + (f" ({answered}/{runs} answered)" if runs else ""))
    ready = get(p, "runaway", "kill_to_ready_ms", "max")
    target("replacement worker ready after the kill (max)", ready,
           None if ready is None else ready <= 10, "≤ 10 ms", fmt(ready, ".1f", " ms"))
    nf = get(p, "runaway", "normal_failed")
    target("normal requests failed meanwhile", nf, None if nf is None else nf == 0, "0",
           fmt(nf, "d") + f" of {fmt((nf or 0) + (get(p, 'runaway', 'normal_ok') or 0), 'd')}"
           if nf is not None else "–")
    return out


def write_reports(out_dir: Path, doc: dict[str, Any]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out_dir / "latest.tsv").write_text(tsv(doc))
    (out_dir / "latest.md").write_text(markdown(doc))


def wrk_rows(name: str, figures: dict[str, Any], prefix: str) -> list[list[str]]:
    """The TSV rows of a phase of wrk runs (figures by concurrency), names prefixed."""
    rows = []
    for c, t in figures.items():
        rows += [[name, f"{prefix}rps_median", c, f"{t['rps']['median']:.1f}", "req/s"],
                 [name, f"{prefix}rps_min", c, f"{t['rps']['min']:.1f}", "req/s"],
                 [name, f"{prefix}rps_max", c, f"{t['rps']['max']:.1f}", "req/s"],
                 [name, f"{prefix}p50", c, f"{t['p50_ms']:.3f}", "ms"],
                 [name, f"{prefix}p99", c, f"{t['p99_ms']:.3f}", "ms"],
                 [name, f"{prefix}cpu_per_req", c, fmt(t["cpu_us_per_req"], ".1f"), "us"],
                 [name, f"{prefix}errors", c, str(t["errors"]), "count"]]
    return rows


def tsv(doc: dict[str, Any]) -> str:
    rows = [["server", "figure", "concurrency_or_size", "value", "unit"]]
    for name, r in doc["results"].items():
        rows += wrk_rows(name, r.get("throughput") or {}, "")
        rows += wrk_rows(name, r.get("io") or {}, "io_")
        f = r.get("fairness") or {}
        if f:
            rows += [[name, "fresh_client_median", str(f["conns"]),
                      fmt(get(f, "fresh_ms", "median"), ".2f"), "ms"],
                     [name, "fresh_client_max", str(f["conns"]),
                      fmt(get(f, "fresh_ms", "max"), ".2f"), "ms"],
                     [name, "stalled_connections", str(f["conns"]), str(f["stalled"]), "count"]]
        if r.get("cold_start_ms"):
            rows.append([name, "cold_start_median", "",
                         f"{r['cold_start_ms']['median']:.1f}", "ms"])
        if r.get("pss_after_load_kib") is not None:
            rows.append([name, "pss_after_load", "", str(r["pss_after_load_kib"]), "KiB"])
        if r.get("pss_per_worker_kib") is not None:
            rows.append([name, "pss_per_extra_worker", "",
                         f"{r['pss_per_worker_kib']:.0f}", "KiB"])
        for size, pl in (r.get("payload") or {}).items():
            if "rps" in pl:
                rows += [[name, "payload_rps", size, f"{pl['rps']:.1f}", "req/s"],
                         [name, "payload_p99", size, f"{pl['p99_ms']:.2f}", "ms"]]
        ra = r.get("runaway")
        if ra:
            rows += [[name, "runaway_answered", "", f"{ra['answered']}/{len(ra['runs'])}",
                      "count"],
                     [name, "runaway_late_max", "", fmt(get(ra, "late_ms", "max"), ".1f"), "ms"],
                     [name, "runaway_normal_failed", "", str(ra["normal_failed"]), "count"]]
            if "kill_to_ready_ms" in ra:
                rows.append([name, "runaway_kill_to_ready_max", "",
                             fmt(get(ra, "kill_to_ready_ms", "max"), ".1f"), "ms"])
        lg = r.get("v5_logs")
        if lg:
            rows += [[name, "v5_logs_files_after", lg["logging"], str(lg["files"]), "count"],
                     [name, "v5_logs_bytes_after", lg["logging"], str(lg["bytes"]), "bytes"]]
    for key, rr in (get(doc, "analysis", "v5") or {}).items():
        for fig, value in rr.items():
            rows.append([key, f"ratio_{fig.split('_c')[0]}",
                         fig.split("_c")[1] if "_c" in fig else "", fmt(value, ".3f"), "x"])
    for c, vb in (get(doc, "analysis", "io", "vs_best") or {}).items():
        key = f"{IO_PYRT}/{vb['best'] or 'best'}"
        rows += [[key, "io_ratio_rps", c, fmt(vb["rps"], ".3f"), "x"],
                 [key, "io_ratio_p99", c, fmt(vb["p99"], ".3f"), "x"]]
    return "".join("\t".join(row) + "\n" for row in rows)


def markdown(doc: dict[str, Any]) -> str:
    res: dict[str, dict[str, Any]] = doc["results"]
    st = doc["settings"]
    an = doc["analysis"]
    m = doc["machine"]
    names = [n for n in ALL_SERVERS if n in res]
    concs = [str(c) for c in st["concurrency"]]
    L: list[str] = []
    L.append("# pyrt benchmark" + (" (smoke)" if st["smoke"] else ""))
    L.append("")
    L.append(f"{doc['date']} · {m['cpus']} CPUs ({m['cpus_usable']} usable) {m['cpu_model']} · "
             f"kernel {m['kernel']} · {m['mem_total_mib']} MiB · load average at start "
             f"{' '.join(m['loadavg_start'])} · pyrt {doc['versions'].get('pyrt')} at "
             f"{doc['git']['commit']}{' (uncommitted changes)' if doc['git']['dirty'] else ''}")
    L.append("")
    L.append(f"{st['workers']} worker processes each (the seed's Flask server: one threaded "
             f"process). wrk {st['runs']} run(s) x {st['duration']} s per concurrency, rounds "
             f"interleaved across servers; the upstream test request (keep-alive); medians, "
             f"spread as min–max. The machine is shared: absolute numbers are noisy, read the "
             f"ratios. Took {doc['elapsed_s']:.0f} s."
             + (" The v5 rows run the v5 workload instead (open-runtimes' contract: "
                "section *open-runtimes v5 contract*); `pyrt/x` is for the seed rows."
                if any(n in V5_SERVERS for n in names) else ""))
    L.append("")
    L.append("## Throughput (req/s)")
    L.append("")
    head = ["server"] + [f"c={c}" for c in concs] + [f"% ceiling c={c}" for c in concs] + \
           [f"pyrt/x c={c}" for c in concs]
    L += table_head(head)
    starved = []
    for n in names:
        row = [res[n].get("label", n)]
        stalled = get(res[n], "fairness", "stalled") or 0
        if stalled:
            starved.append(f"{res[n].get('label', n)}: {stalled} of "
                           f"{get(res[n], 'fairness', 'connections_seen')}")
        for c in concs:
            t = get(res[n], "throughput", c)
            mark = " ‡" if stalled and c == str(st["fairness_conns"]) else ""
            row.append(f"{t['rps']['median']:.0f} ({t['rps']['min']:.0f}–{t['rps']['max']:.0f})"
                       f"{mark}" if t else "–")
        for c in concs:
            row.append(fmt(get(an, "pct_of_ceiling", n, c), ".0f", "%"))
        for c in concs:
            row.append(fmt(get(an, "ratios", n, f"rps_c{c}"), ".2f", "x")
                       if n != "pyrt" and n not in V5_SERVERS else "")
        L.append(table_row(row))
    if starved:
        L.append("")
        L.append(f"‡ Connections starved in the fairness run (nothing for over {STALL_MS} ms): "
                 + "; ".join(starved) + ". That figure is what the other connections got, "
                 "and wrk's percentiles cover completed requests only.")
    L.append("")
    L.append("## Latency and CPU")
    L.append("")
    head = ["server"] + [f"p50 / p99 c={c} (ms)" for c in concs] + \
           [f"CPU/req c={c} (µs)" for c in concs] + ["wrk errors"]
    L += table_head(head)
    for n in names:
        row = [res[n].get("label", n)]
        for c in concs:
            t = get(res[n], "throughput", c)
            row.append(f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}" if t else "–")
        for c in concs:
            row.append(fmt(get(res[n], "throughput", c, "cpu_us_per_req"), ".0f"))
        errs = [get(res[n], "throughput", c, "errors") or 0 for c in concs]
        row.append(str(sum(errs)))
        L.append(table_row(row))
    L += markdown_v5(doc, names, concs)
    L += markdown_io(doc, names)
    L.append("")
    L.append(f"## Fairness under {st['fairness_conns']} connections, cold start, memory")
    L.append("")
    L += table_head(["server", "fresh client median / max (ms)", f"stalled > {STALL_MS} ms",
                     "max lastrcv (ms)", "cold start (ms)", "PSS after load (MiB)",
                     "per extra worker (MiB)", "processes"])
    for n in names:
        r = res[n]
        f = r.get("fairness") or {}
        fresh = (f"{f['fresh_ms']['median']:.1f} / {f['fresh_ms']['max']:.1f}"
                 if f.get("fresh_ms") else "–")
        if f.get("fresh_failed"):
            fresh += f" ({f['fresh_failed']} failed)"
        cold = r.get("cold_start_ms")
        L.append(table_row([
            r.get("label", n), fresh,
            f"{f['stalled']} of {f['connections_seen']}" if f and f["stalled"] is not None
            else "–",
            fmt(f.get("max_lastrcv_ms"), "d") if f else "–",
            f"{cold['median']:.0f} ({cold['min']:.0f}–{cold['max']:.0f})" if cold else "–",
            fmt(r.get("pss_after_load_kib") and r["pss_after_load_kib"] / 1024, ".1f"),
            fmt(r.get("pss_per_worker_kib") and r["pss_per_worker_kib"] / 1024, ".2f"),
            fmt(r.get("processes"), "d")]))
    sizes = [str(s) for s in st["payload_sizes"]]
    if sizes and any(res[n].get("payload") for n in names):
        L.append("")
        L.append(f"## Payload scaling (echo, c={st['payload_conns']}, "
                 f"{st['payload_duration']} s): req/s / p99 ms")
        L.append("")
        L += table_head(["server"] + [size_label(int(s)) for s in sizes])
        for n in names:
            pl = res[n].get("payload")
            if not pl:
                continue
            row = [res[n].get("label", n)]
            for s in sizes:
                e = pl.get(s)
                if e is None:
                    row.append("–")
                elif "rps" not in e:
                    row.append(f"failed: {e['check'][:60]}")
                else:
                    row.append(f"{e['rps']:.0f} / {e['p99_ms']:.1f}"
                               + (f" ({e['errors']} err)" if e["errors"] else ""))
            L.append(table_row(row))
    if any(res[n].get("runaway") for n in names):
        L.append("")
        L.append(f"## Runaway code (`while True: pass`, \"timeout\": {st['runaway_timeout']:g})")
        L.append("")
        L += table_head(["server", "answer", "after deadline (ms)", "replacement ready (ms)",
                         "normal requests meanwhile: ok / failed (max ms)"])
        for n in names:
            ra = res[n].get("runaway")
            if not ra:
                continue
            first = ra["runs"][0]
            if ra["answered"]:
                ans = f"{ra['answered']}/{len(ra['runs'])}: {first['status']} " \
                      f"{(first['answer'] or '')[:60]}"
            else:
                ans = f"none within {first['secs']:.1f} s ({(first['answer'] or '')[:40]})"
            late = ra.get("late_ms")
            ready = ra.get("kill_to_ready_ms")
            L.append(table_row([
                res[n].get("label", n), ans.replace("|", "\\|"),
                f"{late['median']:.1f} (max {late['max']:.1f})" if late else "–",
                f"{ready['median']:.1f} (max {ready['max']:.1f})" if ready else "–",
                f"{ra['normal_ok']} / {ra['normal_failed']} ({ra['normal_max_ms']:.1f})"]))
    if an["targets"]:
        L.append("")
        L.append("## pyrt's targets (issue 7)")
        L.append("")
        L += table_head(["target", "goal", "measured", ""])
        for t in an["targets"]:
            mark = "n/a" if t["ok"] is None else ("ok" if t["ok"] else "**missed**")
            L.append(table_row([t["target"], t["goal"], t["shown"], mark]))
    notes = [(n, x) for n in names for x in res[n].get("notes", [])]
    if notes or doc["problems"]:
        L.append("")
        L.append("## Notes")
        L.append("")
        for n, x in notes:
            L.append(f"- {n}: {x}".replace("\n", " ")[:400])
        for x in doc["problems"]:
            L.append(f"- problem: {x}")
    L.append("")
    L.append("## Command lines")
    L.append("")
    L.append("Ports and paths are those of this run; `BENCH_CODE_DIR` is a scratch copy of "
             "`bench/functions`, byte-compiled.")
    L.append("")
    for n in names:
        cmd = res[n].get("command")
        if cmd:
            note = res[n].get("setting_note")
            L.append(f"- **{n}**{f' ({note})' if note else ''}: `{cmd}`")
    L.append(f"- **wrk**: `{doc['wrk_command']}`")
    L.append("")
    L.append("## Versions")
    L.append("")
    L.append(", ".join(f"{k} {v}" for k, v in doc["versions"].items()))
    L.append("")
    return "\n".join(L)


def markdown_v5(doc: dict[str, Any], names: list[str], concs: list[str]) -> list[str]:
    """The v5 section: pyrt-v5 beside open-runtimes' own server and pyrt's seed figure."""
    res: dict[str, dict[str, Any]] = doc["results"]
    v5 = doc.get("v5") or {}
    rows = [n for n in ("pyrt", *V5_SERVERS) if n in names]
    if not any(n in V5_SERVERS for n in rows):
        return []
    L = ["", "## open-runtimes v5 contract", ""]
    L.append(f"The same function on each v5 server — {v5.get('function')}. The request, "
             f"over keep-alive, is what the open-runtimes executor sends (executeV5) plus a "
             f"user header: {v5.get('request')}. Logging: {v5.get('logging')}. pyrt's "
             "seed-contract row (the upstream request, `main(req, res)`) is the reference. "
             "CPU per request is the server's processes only.")
    src = v5.get("openruntimes_src")
    if src:
        L.append("")
        L.append(f"open-runtimes' server: its own `server.py`, `function_types.py`, "
                 f"`logger.py`, `config.py`, `custom_worker.py` from `{src['path']}` "
                 f"(sha256 of the five, concatenated: {src['sha256']}), run as its "
                 "`hooks/server.sh` does but on Debian's gunicorn and aiohttp (their image "
                 "pins gunicorn 23.0.0 and aiohttp 3.10.9; versions below).")
    L.append("")
    head = ["server"] + [f"req/s c={c}" for c in concs] + \
        [f"p50 / p99 c={c} (ms)" for c in concs] + [f"CPU/req c={c} (µs)" for c in concs] + \
        ["cold start (ms)", "PSS after load (MiB)", "logs folder after"]
    L += table_head(head)
    for n in rows:
        r = res[n]
        row = [r.get("label", n) + (" (seed contract)" if n == "pyrt" else "")]
        for c in concs:
            t = get(r, "throughput", c)
            row.append(f"{t['rps']['median']:.0f} ({t['rps']['min']:.0f}–{t['rps']['max']:.0f})"
                       if t else "–")
        for c in concs:
            t = get(r, "throughput", c)
            row.append(f"{t['p50_ms']:.2f} / {t['p99_ms']:.2f}" if t else "–")
        for c in concs:
            row.append(fmt(get(r, "throughput", c, "cpu_us_per_req"), ".0f"))
        cold = r.get("cold_start_ms")
        row.append(f"{cold['median']:.0f}" if cold else "–")
        row.append(fmt(r.get("pss_after_load_kib") and r["pss_after_load_kib"] / 1024, ".1f"))
        lg = r.get("v5_logs")
        row.append(f"{lg['files']} files, {lg['bytes']} bytes" if lg else "")
        L.append(table_row(row))
    if v5.get("skipped"):
        L.append("")
        L.append(f"Not measured: {v5['skipped']}.")
    ratios = get(doc, "analysis", "v5") or {}
    if ratios:
        L.append("")
        L += table_head(["ratio"] + [f"req/s c={c}" for c in concs] +
                        [f"p99 c={c}" for c in concs] + [f"CPU/req c={c}" for c in concs] +
                        ["cold start", "PSS after load"])
        for key, rr in ratios.items():
            a, b = key.split("/")
            label = f"{a} / {b}" + (" (seed)" if b == "pyrt" else "")
            L.append(table_row(
                [label] + [fmt(rr.get(f"rps_c{c}"), ".2f", "x") for c in concs] +
                [fmt(rr.get(f"p99_c{c}"), ".2f", "x") for c in concs] +
                [fmt(rr.get(f"cpu_c{c}"), ".2f", "x") for c in concs] +
                [fmt(rr.get("cold_start"), ".2f", "x"), fmt(rr.get("pss_after_load"), ".2f", "x")]))
    return L


IO_ENFORCEMENT = (
    "Not the same work, though: pyrt-v5 enforces each execution's deadline "
    "(`x-open-runtimes-timeout`; at the deadline the master answers that client and the "
    "task is cancelled, and a task that blocks the loop with sync code gets its worker "
    "killed and replaced) and attributes output (each task's `print` and `context.log` go "
    "to its own execution's log files). The aiohttp and uvicorn apps enforce no deadline "
    "and capture no output. open-runtimes' server cancels a coroutine that awaits past its "
    "timeout (`asyncio.wait_for`) but cannot stop one that blocks the loop, and redirects "
    "`sys.stdout` for the whole process, so the prints of concurrent executions mix.")


def markdown_io(doc: dict[str, Any], names: list[str]) -> list[str]:
    """The I/O-bound section: req/s against the ideal, latency, and pyrt-v5 over the best
    of the others."""
    res: dict[str, dict[str, Any]] = doc["results"]
    concs = [str(c) for c in doc["settings"].get("io_concurrency") or []]
    rows = [n for n in names if n in IO_SERVERS and res[n].get("io")]
    if not concs or not rows:
        return []
    an = get(doc, "analysis", "io") or {}
    L = ["", f"## I/O-bound function (awaits {IO_WAIT_MS} ms)", ""]
    L.append(f"The same coroutine on each server: `async def main` awaits "
             f"`asyncio.sleep({IO_WAIT_MS / 1000:g})` (a call to another service), then "
             "answers. The v5 rows run `functions/v5` with the wait in the query "
             f"(`wait_ms={IO_WAIT_MS}`, the v5 request otherwise); aiohttp and uvicorn run "
             f"`functions/io` (the upstream request and answer, the wait in its `{IO_HEADER}` "
             "header) awaited on their event loop. Every server has "
             f"{doc['settings']['workers']} worker processes, but none is bound by them "
             "here: each runs many executions at once on its event loop (pyrt-v5: "
             "`--async-slots`, 1000 by default in v5). The ideal is every connection always "
             f"waiting: connections / {IO_WAIT_MS / 1000:g} s = "
             + ", ".join(f"{io_ideal_rps(c):.0f} req/s at c={c}" for c in concs) + ".")
    L.append("")
    L += table_head(["server"] + [f"req/s c={c}" for c in concs] +
                    [f"% of ideal c={c}" for c in concs] +
                    [f"p50 / p99 c={c} (ms)" for c in concs] +
                    [f"CPU/req c={c} (µs)" for c in concs] + ["wrk errors"])
    for n in rows:
        L.append(table_row([res[n].get("label", n)] + io_cells(res[n]["io"], concs)))
    vb = an.get("vs_best") or {}
    L.append("")
    if any(get(vb, c, "best") for c in concs):
        L += table_head(["pyrt-v5 / best of the others"] + [f"c={c}" for c in concs])
        L.append(table_row(["req/s"] + [io_ratio_cell(vb.get(c), "rps") for c in concs]))
        L.append(table_row(["p99 (lower is better)"] +
                           [io_ratio_cell(vb.get(c), "p99") for c in concs]))
    else:
        L.append("No other server ran it in this run: no ratio.")
    t = an.get("target")
    if t:
        mark = "n/a" if t["ok"] is None else ("ok" if t["ok"] else "**missed**")
        L.append("")
        L.append(f"Target (issue 19): at c={t['conns']}, pyrt-v5's req/s at least the best "
                 f"of the others ({t['goal']}): {fmt(t['value'], '.2f', 'x')}, {mark}.")
    L.append("")
    L.append(IO_ENFORCEMENT)
    return L


def io_cells(io: dict[str, Any], concs: list[str]) -> list[str]:
    cells = []
    for c in concs:
        t = io.get(c)
        cells.append(f"{t['rps']['median']:.0f} ({t['rps']['min']:.0f}–{t['rps']['max']:.0f})"
                     if t else "–")
    for c in concs:
        v = get(io, c, "rps", "median")
        cells.append(fmt(v and v / io_ideal_rps(c) * 100, ".0f", "%"))
    for c in concs:
        t = io.get(c)
        cells.append(f"{t['p50_ms']:.1f} / {t['p99_ms']:.1f}" if t else "–")
    for c in concs:
        cells.append(fmt(get(io, c, "cpu_us_per_req"), ".0f"))
    cells.append(str(sum(get(io, c, "errors") or 0 for c in concs)))
    return cells


def io_ratio_cell(vb: Optional[dict[str, Any]], key: str) -> str:
    if not vb or vb.get(key) is None:
        return "–"
    return f"{vb[key]:.2f}x (vs {vb['best']})"


def table_head(cols: list[str]) -> list[str]:
    return [table_row(cols), "|" + "|".join("---" for _ in cols) + "|"]


def table_row(cols: list[str]) -> str:
    return "| " + " | ".join(cols) + " |"
