import { existsSync, mkdirSync, readFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ContainerRecord } from '../../src/model/records.ts';
import { depotTasks, removeTree, writeFileAtomicSync } from '../../src/depot/depot-tasks.ts';
import { SnapshotWriter, snapshotText } from '../../src/depot/snapshot-writer.ts';
import { Container } from '../../src/model/container.ts';
import { toSnapshot } from '../../src/depot/snapshot-format.ts';
import { FolderRemover, RETIRED_PREFIX } from '../../src/depot/folder-remover.ts';
import { waitFor } from '../support/wait.ts';
import { InThreadPool } from '../support/in-thread-pool.ts';

const depot = mkdtempSync(join(tmpdir(), 'warden-depot-'));
afterAll(() => rmSync(depot, { recursive: true, force: true }));

function record(id: string): ContainerRecord {
  return {
    id, handle: `h-${id}`, state: 'active', path: join(depot, id), network: '10.254.0.4',
    host_ip: '10.254.0.5', container_ip: '10.254.0.6', uid: 10001, ports: [61001], grace_time: null,
    bind_mounts: [{ src_path: '/a', dst_path: '/b', mode: 1 }], rootfs: '/r', events: ['out of memory'],
    net_in: [{ host_port: 61001, container_port: 8080 }], net_out: [{ network: '10.0.0.0/8', protocol: 0 }],
    limits: { memory_limit_in_bytes: 1 << 26, disk: { byte_limit: 1 << 20 } },
    jobs: [{ id: 3, state: 'running', privileged: false, discard_output: false, log_tag: 'x' }],
    created_at: 1, backend: { init_pid: 42 },
  };
}

describe('snapshots', () => {
  it('writes a container\'s snapshot only when its text changed, and again after a failed write', async () => {
    const r = record('ccccccccccc');
    mkdirSync(r.path, { recursive: true });
    const pool = new InThreadPool();
    const writer = new SnapshotWriter(pool);
    const c = new Container(r);
    const writes = () => pool.callsOf('state.writeText').length;
    await writer.write(c);
    await writer.write(c);
    await writer.writeAll([c]);
    expect(writes()).toBe(1);
    c.record.limits = { ...c.record.limits, memory_limit_in_bytes: 1 << 20 };
    await writer.write(c);
    expect(writes()).toBe(2);
    // A failed write may have left either text: the next one writes whatever it is.
    c.record.limits = { ...c.record.limits, memory_limit_in_bytes: 2 << 20 };
    pool.failNext('state.writeText', { error: new Error('ENOSPC') });
    await expect(writer.write(c)).rejects.toThrow('ENOSPC');
    await writer.write(c);
    expect(writes()).toBe(4);
    expect(readFileSync(c.snapshotPath, 'utf8')).toBe(snapshotText(toSnapshot(c.record)));
  });

  it('round-trips a record through an atomic write and the depot scan', async () => {
    const r = record('aaaaaaaaaaa');
    mkdirSync(join(r.path, 'jobs/3'), { recursive: true });
    mkdirSync(join(r.path, 'jobs/4'), { recursive: true });
    writeFileSync(join(r.path, 'jobs/4/exit_status'), '9\n');
    await depotTasks['state.writeText']({ path: join(r.path, 'snapshot.json'), text: snapshotText(r) });
    mkdirSync(join(depot, 'bbbbbbbbbbb')); // a folder with no snapshot
    writeFileSync(join(r.path, 'snapshot.json.tmp-dead'), '{"half'); // an interrupted write
    const { entries } = await depotTasks['state.scanDepot']({ depot });
    const a = entries.find((e) => e.id === 'aaaaaaaaaaa')!;
    expect(a.snapshot).toEqual(r);
    expect(a.jobs.sort((x, y) => x.id - y.id)).toEqual([{ id: 3, exit_status: undefined }, { id: 4, exit_status: 9 }]);
    expect(entries.find((e) => e.id === 'bbbbbbbbbbb')!.snapshot).toBeUndefined();
    expect(readdirSync(r.path).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('replaces the old content whole', async () => {
    const p = join(depot, 'file.json');
    writeFileAtomicSync(p, 'old');
    writeFileAtomicSync(p, 'new');
    expect(readdirSync(depot).filter((f) => f.startsWith('file.json'))).toEqual(['file.json']);
  });
});

describe('removeTree', () => {
  it('removes a folder of files, a tree with subfolders, a lone file, and nothing', async () => {
    const root = mkdtempSync(join(tmpdir(), 'remove-tree-'));
    try {
      const flat = join(root, 'job');
      mkdirSync(flat);
      for (const f of ['stdout', 'stderr', 'exit_status']) writeFileSync(join(flat, f), f);
      symlinkSync('/etc/passwd', join(flat, 'link'));
      await removeTree(flat);
      expect(existsSync(flat)).toBe(false);
      expect(existsSync('/etc/passwd')).toBe(true);

      const deep = join(root, 'container');
      mkdirSync(join(deep, 'jobs', '1'), { recursive: true });
      writeFileSync(join(deep, 'jobs', '1', 'stdout'), 'x');
      writeFileSync(join(deep, 'snapshot.json'), '{}');
      await removeTree(join(deep, 'snapshot.json'));
      expect(existsSync(join(deep, 'snapshot.json'))).toBe(false);
      await removeTree(deep);
      expect(existsSync(deep)).toBe(false);

      await removeTree(join(root, 'never-was'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('FolderRemover', () => {
  /** n job folders (a few files each) in a fresh jobs folder. */
  function jobFolders(root: string, n: number): string[] {
    const jobs = join(root, 'jobs');
    mkdirSync(jobs, { recursive: true });
    return Array.from({ length: n }, (_, i) => {
      const d = join(jobs, String(i + 1));
      mkdirSync(d);
      for (const f of ['stdout', 'stderr', 'exit_status']) writeFileSync(join(d, f), f);
      return d;
    });
  }

  it('hides the folders of one turn at once, in tasks of 64, and deletes them once removals pause', async () => {
    const root = mkdtempSync(join(tmpdir(), 'folder-remover-'));
    try {
      const pool = new InThreadPool();
      const remover = new FolderRemover(pool);
      const dirs = jobFolders(root, 300);
      await Promise.all(dirs.map((d) => remover.remove(d)));
      // Settled: none is listed as a job any more (recovery reads only digit names), all hidden.
      const names = readdirSync(join(root, 'jobs'));
      expect(names.filter((n) => /^[0-9]+$/.test(n))).toEqual([]);
      expect(names.sort()).toEqual(dirs.map((_, i) => `${RETIRED_PREFIX}${i + 1}`).sort());
      const sizes = (name: string) => pool.callsOf(name as 'state.hideTrees').map((a) => (a as { paths: string[] }).paths.length);
      expect(sizes('state.hideTrees')).toEqual([64, 64, 64, 64, 44]);
      expect(sizes('state.removeTrees')).toEqual([]);
      // The delete comes after a quiet spell, in tasks of 64.
      const t = performance.now();
      await waitFor('the hidden folders to be deleted', () => readdirSync(join(root, 'jobs')).length === 0);
      expect(performance.now() - t).toBeGreaterThan(150);
      await waitFor('the last delete task', () => sizes('state.removeTrees').length === 5);
      expect(sizes('state.removeTrees')).toEqual([64, 64, 64, 64, 44]);
      // A folder that is not there still settles, and leaves nothing to delete.
      await remover.remove(join(root, 'jobs', 'never-was'));
      await remover.settled();
      expect(sizes('state.removeTrees')).toHaveLength(5);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('deletes where it is a folder it cannot hide, and everything at once when asked', async () => {
    const root = mkdtempSync(join(tmpdir(), 'folder-remover-'));
    try {
      const pool = new InThreadPool();
      const remover = new FolderRemover(pool);
      const [a, b] = jobFolders(root, 2);
      // Its hidden name is taken by a folder with files: the rename fails, the delete takes it where it is.
      mkdirSync(join(root, 'jobs', `${RETIRED_PREFIX}1`));
      writeFileSync(join(root, 'jobs', `${RETIRED_PREFIX}1`, 'stdout'), 'x');
      await Promise.all([remover.remove(a!), remover.remove(b!)]);
      expect(existsSync(a!)).toBe(true);
      expect(existsSync(join(root, 'jobs', `${RETIRED_PREFIX}2`))).toBe(true);
      await remover.settled();
      expect(readdirSync(join(root, 'jobs')).sort()).toEqual([`${RETIRED_PREFIX}1`]);
      // A hidden folder a daemon left is deleted through deleteLater (recovery's way).
      remover.deleteLater([join(root, 'jobs', `${RETIRED_PREFIX}1`)]);
      await remover.settled();
      expect(readdirSync(join(root, 'jobs'))).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('lists what a stopped daemon left hidden, apart from the jobs, in the depot scan', async () => {
    const depot = mkdtempSync(join(tmpdir(), 'folder-remover-depot-'));
    try {
      const c = join(depot, 'c1');
      const [, two] = jobFolders(c, 2);
      writeFileSync(join(c, 'snapshot.json'), '{}');
      const remover = new FolderRemover(new InThreadPool());
      await remover.remove(two!);
      const scan = await depotTasks['state.scanDepot']({ depot });
      expect(scan.entries.map((e) => ({ jobs: e.jobs.map((j) => j.id), hidden: e.hidden }))).toEqual([
        { jobs: [1], hidden: [join(c, 'jobs', `${RETIRED_PREFIX}2`)] },
      ]);
    } finally {
      rmSync(depot, { recursive: true, force: true });
    }
  });
});
