# Where the server's HTTP threads wait to run: reads `perf script -F comm,pid,cpu,time,event,trace`
# of a `perf sched record -a` taken during a benchmark (a snapshot running or not) and, for the
# threads given (a comma list of the server's actix-rt thread ids), sums the delay from each
# wakeup to running, by the task that held the CPU before them; the snapshot thread
# (`quiver-background`, cut to 15 characters by the kernel) and the kernel's write-back workers
# are named apart. Used by snap17 (benches/PERFORMANCE_LOG.md) to tell Quiver's share of a
# serving thread's wait from the machine's.
#   perf sched record -a -o F -- sleep 4     # during wrk, after POST /admin/snapshots
#   perf script -i F -F comm,pid,cpu,time,event,trace | python3 benches/persist/wakeup_delays.py TIDS
import sys, re, collections
tids = set(int(t) for t in sys.argv[1].split(','))
wake = {}
delays = []
by_prev = collections.Counter()
behind_bg = []
sw = re.compile(r'^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_switch:\s+prev_comm=(.*?) prev_pid=(\d+).*next_comm=(.*?) next_pid=(\d+)')
wk = re.compile(r'^\s*(\S.*?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+sched:sched_waking:\s+comm=(.*?) pid=(\d+)')
for line in sys.stdin:
    m = wk.match(line)
    if m:
        pid = int(m.group(6))
        if pid in tids:
            wake.setdefault(pid, float(m.group(4)))
        continue
    m = sw.match(line)
    if m:
        nxt = int(m.group(8))
        if nxt in tids and nxt in wake:
            d = (float(m.group(4)) - wake.pop(nxt)) * 1e6
            delays.append(d)
            prev = re.sub(r'[-:/]?\d+$', '', m.group(5).strip())
            by_prev[prev] += d
            if prev == 'quiver-backgrou':
                behind_bg.append(d)
delays.sort()
n = len(delays)
if n == 0:
    print("no wakeups"); sys.exit()
q = lambda p: delays[min(n - 1, int(p * n))]
tot = sum(delays)
print(f"wakeups {n}, delay p50 {q(.5):.0f} us, p99 {q(.99):.0f} us, p99.9 {q(.999):.0f} us, max {delays[-1]:.0f} us, total {tot/1000:.0f} ms")
print("  behind: " + ", ".join(f"{k} {v/1000:.0f} ms ({100*v/tot:.0f}%)" for k, v in by_prev.most_common(5)) + f"; snapshot thread {by_prev['quiver-backgrou']/1000:.0f} ms, kworkers {sum(v for k, v in by_prev.items() if k.startswith('kworker'))/1000:.0f} ms, swapper {by_prev['swapper']/1000:.0f} ms")
behind_bg.sort()
if behind_bg:
    print(f"  behind the snapshot thread: {len(behind_bg)} wakeups, median {behind_bg[len(behind_bg)//2]:.0f} us, max {behind_bg[-1]:.0f} us")
