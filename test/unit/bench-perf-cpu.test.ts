// The bench's --perf attribution (bench/harness/trace/perf-cpu.ts) on a hand-written
// `perf script --show-task-events -F comm,pid,tid,time` text: which tree a sample
// belongs to, what a process is named before and after its exec, and the table.
import { describe, expect, it } from 'vitest';
import { breakdownRows, cpuByProcess, parsePerfScript, ProcessTree } from '../../bench/harness/trace/perf-cpu.ts';

// 100 is the bench, 200 the daemon it started (a worker thread 201), 300 the daemon's
// spawner, 400 a command the spawner forked that execs btrfs at t=10.5; 500 a raw
// script the bench forked, 600 its subshell that execs ip at t=20.5. 50 ran before
// the recording and belongs to neither.
const SCRIPT = `
         swapper     0/0         0.000000: PERF_RECORD_FORK(50:50):(1:1)
         swapper     0/0         0.000000: PERF_RECORD_COMM: sshd:50/50
         swapper     0/0         0.000000: PERF_RECORD_FORK(100:100):(1:1)
         swapper     0/0         0.000000: PERF_RECORD_COMM: warden-bench:100/100
    warden-bench   100/100       9.000000: PERF_RECORD_FORK(200:200):(100:100)
            node   200/200       9.000100: PERF_RECORD_COMM exec: node:200/200
      MainThread   200/200       9.100000: PERF_RECORD_FORK(200:201):(200:200)
      MainThread   200/200       9.200000: PERF_RECORD_FORK(300:300):(200:200)
            node   300/300       9.200100: PERF_RECORD_COMM exec: node:300/300
            node   300/300      10.000000: PERF_RECORD_FORK(400:400):(300:300)
      MainThread   200/200      10.100000: 
    WorkerThread   200/201      10.100000: 
            node   300/300      10.200000: 
            node   400/400      10.300000: 
            node   400/400      10.400000: 
           btrfs   400/400      10.500000: PERF_RECORD_COMM exec: btrfs:400/400
           btrfs   400/400      10.600000: 
            sshd    50/50       10.700000: 
    warden-bench   100/100      10.800000: 
    warden-bench   100/100      20.000000: PERF_RECORD_FORK(500:500):(100:100)
            bash   500/500      20.000100: PERF_RECORD_COMM exec: bash:500/500
            bash   500/500      20.100000: 
            bash   500/500      20.200000: PERF_RECORD_FORK(600:600):(500:500)
            bash   600/600      20.300000: 
              ip   600/600      20.500000: PERF_RECORD_COMM exec: ip:600/600
              ip   600/600      20.600000: 
    warden-bench   100/100      20.700000: 
`.split('\n');

describe('perf CPU attribution (bench --perf)', () => {
  it('names each sample by its tree and by what the process ran at that moment', async () => {
    const data = await parsePerfScript(SCRIPT);
    const tree = new ProcessTree(data, new Set([200, 100]));
    expect(tree.root(400)).toBe(200);
    expect(tree.root(600)).toBe(100);
    expect(tree.root(50)).toBeUndefined();
    expect(tree.name(400, 10.3)).toBe('fork of node');
    expect(tree.name(400, 10.6)).toBe('btrfs');
    expect(tree.name(600, 20.3)).toBe('fork of bash');
    expect(tree.name(50, 10.7)).toBe('sshd');

    const daemon = cpuByProcess(data, tree, 200, 'daemon', 9_000, 11_000);
    expect(Object.fromEntries(daemon.byName)).toEqual({
      'daemon: MainThread': 1, 'daemon: WorkerThread': 1, node: 1, 'fork of node': 2, btrfs: 1,
    });
    expect(daemon.totalMs).toBe(6);
    // The raw side: the bench's other children, without the bench's own threads or the daemon's tree.
    const raw = cpuByProcess(data, tree, 100, undefined, 19_000, 21_000);
    expect(Object.fromEntries(raw.byName)).toEqual({ bash: 1, 'fork of bash': 1, ip: 1 });
    // A window leaves out what fell outside it.
    expect(cpuByProcess(data, tree, 200, 'daemon', 10_250, 10_450).totalMs).toBe(2);
  });

  it('tabulates ms per operation, the heaviest first, the rest summed, with totals', async () => {
    const data = await parsePerfScript(SCRIPT);
    const tree = new ProcessTree(data, new Set([200, 100]));
    const rows = breakdownRows(
      [
        { cpu: cpuByProcess(data, tree, 200, 'daemon', 9_000, 11_000), ops: 2 },
        { cpu: cpuByProcess(data, tree, 100, undefined, 19_000, 21_000), ops: 1 },
      ],
      2,
    );
    expect(rows[0]).toEqual(['fork of node', '1.0 ms', '0.0 ms']);
    expect(rows).toHaveLength(4);
    expect(rows[1]).toEqual(['bash', '0.0 ms', '1.0 ms']);
    expect(rows.at(-2)).toEqual(['6 others', '2.0 ms', '2.0 ms']);
    expect(rows.at(-1)).toEqual(['all', '3.0 ms', '3.0 ms']);
  });
});
