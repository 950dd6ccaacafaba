#!/usr/bin/env python3
"""Turns softkit_bench's Google Benchmark JSON into tables, CSV, JSON, a plot and
a Markdown results section. Python 3 standard library only; the plot needs gnuplot.

    bench/report.py [--out DIR] [--bin PATH] [--no-plot] RUN.json [RUN.json ...]

Several runs are merged, keeping each case's best (scripts/bench.sh passes every
round of its softkit, oneDNN and oneDNN-held-to-AVX2 processes). Writes into DIR:
    results.csv   one line per benchmark (long format)
    summary.csv   the tables below, one line per (op, shape, ISA, threads)
    results.json  the same, with the context (CPU, versions, date)
    results.md    a Markdown section for the README (tables, plot, how to reproduce)
    throughput_t<threads>.png, plot.gp, plot_*.dat   (with gnuplot)
and prints one table per op on stdout.
"""
import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys

NAME_RE = re.compile(r"^(?P<op>[a-z_]+)/(?P<impl>[a-z0-9_]+)/(?P<isa>[a-z0-9_]+)/t(?P<threads>\d+)/"
                     r"(?P<outer>\d+)x(?P<n>\d+)x(?P<inner>\d+)(?:/.*)?$")
OPS = ["softmax", "log_softmax", "logsumexp", "cross_entropy", "cross_entropy_fwbw", "softmax_backward",
       "log_softmax_backward"]
OP_TITLE = {
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "logsumexp": "logsumexp",
    "cross_entropy": "cross-entropy forward (mean)",
    "cross_entropy_fwbw": "cross-entropy forward + backward (mean)",
    "softmax_backward": "softmax backward (dx from y, dy)",
    "log_softmax_backward": "log_softmax backward (dx from y, dy)",
}
PEERS = ["onednn", "torch", "naive"]
PEER_TITLE = {"onednn": "oneDNN", "torch": "libtorch", "naive": "naive C++"}
FLOORS = {"memcpy", "readsum", "add"}
ISA_ORDER = {"scalar": 0, "neon": 1, "avx2": 2, "avx512": 3}


def load(paths):
    ctx, best = {}, {}
    for path in paths:
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue  # an empty file: that run matched no benchmark
        c = data.get("context", {})
        if not ctx:
            ctx = dict(c)
        else:  # keep what the later runs add (e.g. the capped oneDNN ISA)
            for k in ("onednn_isa",):
                if c.get(k) and c.get(k) not in ctx.get(k, "").split(","):
                    ctx[k] = ",".join(x for x in (ctx.get(k, ""), c[k]) if x)
            if c.get("skipped"):
                ctx["skipped"] = "; ".join(x for x in (ctx.get("skipped", ""), c["skipped"]) if x)
        for b in data.get("benchmarks", []):
            if b.get("run_type", "iteration") != "iteration":
                continue
            m = NAME_RE.match(b["name"])
            if not m:
                continue
            r = {
                "op": m["op"], "impl": m["impl"], "isa": m["isa"], "threads": int(m["threads"]),
                "outer": int(m["outer"]), "n": int(m["n"]), "inner": int(m["inner"]),
                "name": b["name"][: -len("/real_time")] if b["name"].endswith("/real_time") else b["name"],
                "error": b.get("error_message", "") if b.get("error_occurred") else "",
                "gelem_s": None, "gbyte_s": None, "time_us": None, "iterations": b.get("iterations"),
                "repetitions": 1,
            }
            if not r["error"]:
                scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}.get(b.get("time_unit", "ns"), 1e-3)
                r["time_us"] = b["real_time"] * scale
                r["gelem_s"] = b.get("items_per_second", 0.0) / 1e9
                r["gbyte_s"] = b.get("bytes_per_second", 0.0) / 1e9
            # Over repetitions and rounds (several files), keep the best run of each case: on a
            # shared machine the slower ones measure the other work, not the kernel.
            prev = best.get(r["name"])
            if prev is None or (prev["error"] and not r["error"]) or \
                    (not r["error"] and not prev["error"] and r["time_us"] < prev["time_us"]):
                if prev is not None:
                    r["repetitions"] = prev.get("repetitions", 1) + 1
                best[r["name"]] = r
            else:
                prev["repetitions"] = prev.get("repetitions", 1) + 1
    rows = list(best.values())
    return ctx, rows


def shape_key(r):
    return (r["outer"], r["n"], r["inner"])


def shape_label(s):
    outer, n, inner = s
    return f"{outer}x{n}" if inner == 1 else f"{outer}x{n}x{inner} (axis 1)"


def shape_sort(s):
    outer, n, inner = s
    return (inner != 1, n, outer * n * inner)


def dpkg_version(pkg):
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else ""  # e.g. 2.6.3-1, 1.13.1+dfsg-4
    except (OSError, subprocess.SubprocessError):
        return ""


def cpu_info():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    k, v = (x.strip() for x in line.split(":", 1))
                    info.setdefault(k, v)
    except OSError:
        pass
    return info


def fmt_g(v):
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_x(a, b):
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def fmt_pct(a, b):
    if a is None or not b:
        return "-"
    return f"{100.0 * a / b:.0f}%"


class Results:
    def __init__(self, rows):
        self.rows = rows
        self.by = {}
        for r in rows:
            self.by[(r["op"], r["impl"], r["isa"], r["threads"], shape_key(r))] = r

    def get(self, op, impl, isa, threads, shape):
        r = self.by.get((op, impl, isa, threads, shape))
        return r["gelem_s"] if r else None

    def peer(self, op, impl, row_isa, threads, shape):
        """A peer's throughput for a table row: oneDNN held to the row's ISA when that
        run exists (avx2 rows), else the peer's own choice ("auto")."""
        v = self.get(op, impl, row_isa, threads, shape)
        if v is not None and impl == "onednn":
            return v, row_isa
        return self.get(op, impl, "auto", threads, shape), "auto"

    def floor(self, op, threads, shape):
        for f in FLOORS:
            v = self.get(op, f, "auto", threads, shape)
            if v is not None:
                return v, f
        return None, None


def build_tables(res, ops_present):
    """{op: (header, rows)}; rows are lists of strings, plus a dict for the CSV."""
    tables = {}
    for op in OPS:
        if op not in ops_present:
            continue
        op_rows = [r for r in res.rows if r["op"] == op]
        shapes = sorted({shape_key(r) for r in op_rows}, key=shape_sort)
        threads = sorted({r["threads"] for r in op_rows})
        isas = sorted({r["isa"] for r in op_rows if r["impl"] == "softkit"}, key=lambda i: ISA_ORDER.get(i, 9))
        peers = [p for p in PEERS if any(r["impl"] == p for r in op_rows)]
        floor_name = next((r["impl"] for r in op_rows if r["impl"] in FLOORS), None)
        header = ["shape", "ISA", "threads", "softkit"] + [PEER_TITLE[p] for p in peers]
        header += [f"floor ({floor_name})" if floor_name else "floor"]
        header += [f"x {PEER_TITLE[p]}" for p in peers] + ["% of floor"]
        lines, records = [], []
        for s in shapes:
            for t in threads:
                for isa in (isas or ["-"]):
                    sk = res.get(op, "softkit", isa, t, s)
                    fl, _ = res.floor(op, t, s)
                    pv = {}
                    for p in peers:
                        v, used = res.peer(op, p, isa, t, s)
                        pv[p] = (v, used)
                    line = [shape_label(s), isa, str(t), fmt_g(sk) if isas else "n/a"]
                    for p in peers:
                        v, used = pv[p]
                        line.append(fmt_g(v) + (" (avx2)" if p == "onednn" and used == "avx2" and v is not None else ""))
                    line.append(fmt_g(fl))
                    line += [fmt_x(sk, pv[p][0]) for p in peers] + [fmt_pct(sk, fl)]
                    lines.append(line)
                    rec = {"op": op, "shape": f"{s[0]}x{s[1]}x{s[2]}", "outer": s[0], "n": s[1], "inner": s[2],
                           "isa": isa, "threads": t, "softkit_gelem_s": sk, "floor": floor_name, "floor_gelem_s": fl,
                           "fraction_of_floor": (sk / fl) if sk is not None and fl else None}
                    for p in PEERS:
                        v, used = pv.get(p, (None, None))
                        rec[f"{p}_gelem_s"] = v
                        rec[f"{p}_isa"] = used if v is not None else None
                        rec[f"speedup_vs_{p}"] = (sk / v) if sk is not None and v else None
                    records.append(rec)
        tables[op] = (header, lines, records)
    return tables


def render_text(header, lines):
    w = [max(len(h), *(len(l[i]) for l in lines)) if lines else len(h) for i, h in enumerate(header)]
    out = ["  ".join(h.rjust(w[i]) if i >= 3 else h.ljust(w[i]) for i, h in enumerate(header))]
    out.append("  ".join("-" * x for x in w))
    for l in lines:
        out.append("  ".join(c.rjust(w[i]) if i >= 3 else c.ljust(w[i]) for i, c in enumerate(l)))
    return "\n".join(out)


def render_md(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i < 3 else "---:" for i in range(len(header))) + "|"]
    for l in lines:
        out.append("| " + " | ".join(l) + " |")
    return "\n".join(out)


SERIES_STYLE = {  # impl/isa -> (title, gnuplot style)
    "softkit/avx512": ("softkit avx512", "lw 3 lc rgb '#d62728' pt 7"),
    "softkit/avx2": ("softkit avx2", "lw 2 lc rgb '#ff7f0e' pt 5"),
    "softkit/scalar": ("softkit scalar", "lw 2 lc rgb '#bcbd22' pt 9"),
    "softkit/neon": ("softkit neon", "lw 2 lc rgb '#d62728' pt 7"),
    "onednn/auto": ("oneDNN", "lw 2 lc rgb '#1f77b4' pt 13"),
    "onednn/avx2": ("oneDNN (AVX2)", "lw 2 dt 3 lc rgb '#1f77b4' pt 12"),
    "torch/auto": ("libtorch", "lw 2 lc rgb '#9467bd' pt 11"),
    "naive/auto": ("naive C++", "lw 1 lc rgb '#7f7f7f' pt 3"),
    "memcpy/auto": ("floor: memcpy", "lw 3 dt 2 lc rgb 'black' pt 0"),
    "readsum/auto": ("floor: read-only sum", "lw 3 dt 2 lc rgb 'black' pt 0"),
    "add/auto": ("floor: dx = y + dy", "lw 3 dt 2 lc rgb 'black' pt 0"),
}


def make_plots(res, ctx, out_dir):
    """One PNG per thread count, one panel per op: G elements/s against the shapes,
    sorted by row length, for softkit, the peers and the floor. Returns the PNG names."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("report: gnuplot not found (apt-get install gnuplot-nox): no plot", file=sys.stderr)
        return []
    ops = [op for op in OPS if any(r["op"] == op for r in res.rows)]
    threads = sorted({r["threads"] for r in res.rows})
    pngs = []
    script = []
    for t in threads:
        png = f"throughput_t{t}.png"
        ncols = 3 if len(ops) > 4 else 2
        nrows = (len(ops) + ncols - 1) // ncols
        script += [
            f"set terminal pngcairo noenhanced size {680 * ncols},{430 * nrows} font ',10'",
            f"set output '{png}'",
            f"set multiplot layout {nrows},{ncols} title \"softkit vs peers, {t} thread{'s' if t > 1 else ''}, "
            f"{ctx.get('cpu_model', '')}, {ctx.get('date', '')[:10]} (higher is better)\"",
            "set logscale y", "set grid ytics mytics xtics", "set key outside right top font ',8' samplen 2",
            "set ylabel 'G elements/s'", "set xtics rotate by 30 right font ',8'", "set datafile missing 'NaN'",
            "set xlabel 'shape (outer x n [x inner]), sorted by row length n' font ',8'", "set offsets 0.3,0.3,0,0",
        ]
        for op in ops:
            op_rows = [r for r in res.rows if r["op"] == op and r["threads"] == t]
            shapes = sorted({shape_key(r) for r in op_rows}, key=shape_sort)
            series = [k for k in SERIES_STYLE if any(f"{r['impl']}/{r['isa']}" == k for r in op_rows)]
            if not shapes or not series:
                continue
            dat = f"plot_{op}_t{t}.dat"
            with open(os.path.join(out_dir, dat), "w") as f:
                f.write("# index shape " + " ".join(series) + "\n")
                for i, s in enumerate(shapes):
                    vals = []
                    for k in series:
                        impl, isa = k.split("/")
                        v = res.get(op, impl, isa, t, s)
                        vals.append(f"{v:.6g}" if v else "NaN")
                    lab = f"{s[0]}x{s[1]}" if s[2] == 1 else f"{s[0]}x{s[1]}x{s[2]}"
                    f.write(f"{i} \"{lab}\" " + " ".join(vals) + "\n")
            plots = []
            for j, k in enumerate(series):
                title, style = SERIES_STYLE[k]
                w = "lines" if k.split("/")[0] in FLOORS else "linespoints"
                plots.append(f"'{dat}' using 1:{j + 3}:xtic(2) with {w} {style} title '{title}'")
            script.append(f"set title '{OP_TITLE[op]}'")
            if not any(k.startswith("softkit/") for k in series):
                script.append("set label 1 'softkit: no backward API yet' at graph 0.5, 0.95 center font ',9'")
            script.append("plot " + ", \\\n     ".join(plots))
            script.append("unset label 1")
        script.append("unset multiplot")
        pngs.append(png)
    gp = os.path.join(out_dir, "plot.gp")
    with open(gp, "w") as f:
        f.write("# gnuplot plot.gp (from this folder) remakes the PNGs\n" + "\n".join(script) + "\n")
    r = subprocess.run([gnuplot, "plot.gp"], cwd=out_dir, capture_output=True, text=True)
    if r.returncode != 0:
        print("report: gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return []
    return pngs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="Google Benchmark JSON files from softkit_bench")
    ap.add_argument("--out", default=".", help="folder for the CSV, JSON, Markdown and plots")
    ap.add_argument("--bin", default="build/bench/softkit_bench", help="the binary, for the rerun hint")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--image-prefix", default="", help="prefix of the PNG paths in results.md, e.g. bench/results/")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    ctx, rows = load([p for p in args.runs if os.path.exists(p)])
    if not rows:
        print("report: no benchmark results in " + ", ".join(args.runs), file=sys.stderr)
        return 1
    res = Results(rows)
    ops_present = {r["op"] for r in rows}
    tables = build_tables(res, ops_present)

    cpu = cpu_info()
    versions = {
        "libdnnl-dev": dpkg_version("libdnnl-dev"),
        "libtorch-dev": dpkg_version("libtorch-dev"),
        "libbenchmark-dev": dpkg_version("libbenchmark-dev"),
        "g++": dpkg_version("g++"),
    }
    date = ctx.get("date", "")[:10]
    cpu_line = (f"{ctx.get('cpu_model') or cpu.get('model name', 'unknown CPU')} "
                f"(family {cpu.get('cpu family', '?')}, model {cpu.get('model', '?')}), "
                f"{ctx.get('num_cpus', '?')} cores at {ctx.get('mhz_per_cpu', '?')} MHz, "
                f"L2 {sum(c['size'] for c in ctx.get('caches', []) if c.get('level') == 2) // 1024} KiB/core, "
                f"L3 {sum(c['size'] for c in ctx.get('caches', []) if c.get('level') == 3) // 1048576} MiB")
    peers_line = []
    if ctx.get("onednn_version"):
        peers_line.append(f"oneDNN {ctx['onednn_version']}, package libdnnl-dev {versions['libdnnl-dev'] or '?'}, "
                          f"runs: {ctx.get('onednn_isa', 'auto')}")
    if ctx.get("torch_version"):
        peers_line.append(f"libtorch {ctx['torch_version']}, package libtorch-dev {versions['libtorch-dev'] or '?'}")
    errors = [r for r in rows if r["error"]]
    # A floor that gets slower with more threads means the run shared its cores.
    suspect = []
    for (op, impl, isa, t, shape), r in sorted(res.by.items(), key=lambda kv: str(kv[0])):
        if impl in FLOORS and t > 1 and r["gelem_s"]:
            one = res.get(op, impl, isa, 1, shape)
            if one and r["gelem_s"] < 0.5 * one:
                suspect.append(f"{op} {shape_label(shape)} t{t}")
    load_avg = ctx.get("load_avg", [0])[0] if ctx.get("load_avg") else 0
    skipped = [s for s in ctx.get("skipped", "").split("; ") if s]

    # ---- stdout
    print(f"\nsoftkit {ctx.get('softkit_version', '?')} benchmark, {date}, {cpu_line}")
    print("peers: " + ("; ".join(peers_line) if peers_line else "none built"))
    for s in skipped:
        print("skipped: " + s)
    print("G elements/s (higher is better); 'x peer' = softkit's speed-up over the peer; '% of floor' = softkit's "
          "throughput as a share of the memory floor's on the same bytes and threads.")
    for op, (header, lines, _) in tables.items():
        print(f"\n== {OP_TITLE[op]} ==")
        if op == "cross_entropy_fwbw" and not any(r["impl"] == "softkit" and r["op"] == op for r in rows):
            print("(softkit has no backward API yet: peers only)")
        print(render_text(header, lines))
    for r in errors:
        print(f"failed: {r['name']}: {r['error']}")
    if suspect:
        print(f"\nwarning: the memory floor ran at under half its 1-thread speed with more threads on "
              f"{len(suspect)} case(s) ({', '.join(suspect[:6])}{', ...' if len(suspect) > 6 else ''}): "
              f"other work was sharing the cores (load average {load_avg:.2f} at the start); "
              f"multi-thread numbers there are not reliable.")

    # ---- files
    long_fields = ["name", "op", "impl", "isa", "threads", "outer", "n", "inner", "gelem_s", "gbyte_s", "time_us",
                   "iterations", "repetitions", "error"]
    with open(os.path.join(args.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=long_fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    records = [rec for _, (_, _, recs) in tables.items() for rec in recs]
    if records:
        with open(os.path.join(args.out, "summary.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(records[0].keys()))
            w.writeheader()
            for rec in records:
                w.writerow(rec)
    pngs = [] if args.no_plot else make_plots(res, ctx, args.out)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"context": ctx, "cpu": cpu_line, "package_versions": versions, "skipped": skipped,
                   "benchmarks": rows, "summary": records, "plots": pngs}, f, indent=1)

    # ---- Markdown
    best = {}
    for r in rows:
        if r["impl"] == "softkit" and not r["error"]:
            best.setdefault(r["op"], set()).add(r["isa"])
    md = [f"## Benchmark results ({date})", "",
          f"Measured on {cpu_line}, Linux.",
          "Peers: " + ("; ".join(peers_line) if peers_line else "none") +
          f"; naive C++ = the seed's algorithm (max, std::exp, sum, divide) built with g++ "
          f"{re.sub(r'^[0-9]+:|-[^-]*$', '', versions['g++']) or ''} -O3; "
          f"Google Benchmark {versions['libbenchmark-dev'] or ''}.", ""]
    if skipped:
        md += ["Skipped: " + "; ".join(skipped) + ".", ""]
    md += ["Throughput in G elements/s (logits per second; higher is better). `x peer` is softkit's speed-up "
           "over that peer, `% of floor` is softkit's throughput as a share of a memcpy of the same bytes "
           "(softmax, log_softmax, cross-entropy forward+backward), of a read-only sum of the logits "
           "(logsumexp, cross-entropy forward), or of `dx = y + dy` (the backward ops), on the same threads. On `avx2` rows oneDNN is held to AVX2 "
           "(`ONEDNN_MAX_CPU_ISA=AVX2`, marked `(avx2)`); elsewhere every peer uses its own ISA choice.", ""]
    for png in pngs:
        md += [f"![throughput, {png}]({args.image_prefix}{png})", ""]
    md += ["Reproduce: `scripts/bench.sh` (full run, results in `build/bench-results/`), "
           "`scripts/bench.sh --quick` (under a minute), or one case: "
           f"`{args.bin} --benchmark_filter='^softmax/softkit/avx512/t1/1x50257x1$'`.", ""]
    md += ["### Summary: softkit's best ISA", ""]
    for op, (header, lines, _) in tables.items():
        isas = sorted(best.get(op, []), key=lambda i: ISA_ORDER.get(i, 9))
        top = isas[-1] if isas else "-"
        sel = [l for l in lines if l[1] == top]
        md += [f"**{OP_TITLE[op]}**" + ("" if isas else " (softkit has no backward API yet: peers only)"), "",
               render_md(header, sel), ""]
    md += ["<details><summary>All ISAs</summary>", ""]
    for op, (header, lines, _) in tables.items():
        md += [f"**{OP_TITLE[op]}**", "", render_md(header, lines), ""]
    md += ["</details>", ""]
    if suspect:
        md += [f"Caveat: with more than one thread the memory floor ran at under half its 1-thread speed on "
               f"{len(suspect)} case(s) ({', '.join(suspect)}): the cores were shared with other work "
               f"(load average {load_avg:.2f} at the start), so those multi-thread numbers are not reliable.", ""]
    if errors:
        md += ["Cases that did not run: " + "; ".join(f"`{r['name']}`: {r['error']}" for r in errors), ""]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(md))

    print(f"\nwrote {args.out}/: results.csv, summary.csv, results.json, results.md"
          + (", " + ", ".join(pngs) if pngs else ""))
    print(f"rerun one case: {args.bin} --benchmark_filter='^<op>/<impl>/<isa>/t<threads>/<outer>x<n>x<inner>$'"
          f"\n  e.g. {args.bin} --benchmark_filter='^softmax/softkit/avx512/t1/1x50257x1$'")
    if any(r["impl"] == "onednn" and r["isa"] == "avx2" for r in rows):
        print(f"  oneDNN held to AVX2: ONEDNN_MAX_CPU_ISA=AVX2 {args.bin} --sk_impls=onednn "
              "--benchmark_filter='^softmax/onednn/avx2/t1/1x50257x1$'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
