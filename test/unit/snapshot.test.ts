import { existsSync, mkdirSync, readFileSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ContainerRecord } from '../../src/model/records.ts';
import { depotTasks, removeTree, writeFileAtomicSync } from '../../src/depot/depot-tasks.ts';
import { SnapshotWriter, snapshotText } from '../../src/depot/snapshot-writer.ts';
import { Container } from '../../src/model/container.ts';
import { toSnapshot } from '../../src/depot/snapshot-format.ts';
import { FORGOTTEN_LIST_PREFIX, FolderRemover } from '../../src/depot/folder-remover.ts';
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
  function jobFolders(root: string, n: number, first = 1): string[] {
    const jobs = join(root, 'jobs');
    mkdirSync(jobs, { recursive: true });
    return Array.from({ length: n }, (_, i) => {
      const d = join(jobs, String(first + i));
      mkdirSync(d);
      for (const f of ['stdout', 'stderr', 'exit_status']) writeFileSync(join(d, f), f);
      return d;
    });
  }

  /** The lists of forgotten jobs in the depot, each with its lines. */
  function lists(dir: string): string[][] {
    return readdirSync(dir)
      .filter((n) => n.startsWith(FORGOTTEN_LIST_PREFIX))
      .map((n) => readFileSync(join(dir, n), 'utf8').split('\n').filter(Boolean));
  }

  it('lists the folders of one turn with one write, deletes them once removals pause, then removes the list', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'folder-remover-'));
    try {
      const pool = new InThreadPool();
      const remover = new FolderRemover(pool, dir);
      const dirs = jobFolders(join(dir, 'c1'), 300);
      await Promise.all(dirs.map((d) => remover.remove(d)));
      // Listed: one write, every folder still there until the quiet spell.
      expect(pool.callsOf('state.appendText')).toHaveLength(1);
      expect(lists(dir)).toEqual([dirs.map((_, i) => `c1/jobs/${i + 1}`)]);
      expect(readdirSync(join(dir, 'c1', 'jobs'))).toHaveLength(300);
      const sizes = () => pool.callsOf('state.removeTrees').map((a) => (a as { paths: string[] }).paths.length);
      expect(sizes()).toEqual([]);
      // The delete comes after a quiet spell, in tasks of 64; the list goes after its folders.
      const t = performance.now();
      await waitFor('the folders and their list to be deleted', () => readdirSync(join(dir, 'c1', 'jobs')).length === 0 && lists(dir).length === 0);
      expect(performance.now() - t).toBeGreaterThan(150);
      expect(sizes()).toEqual([64, 64, 64, 64, 44, 1]);
      // The next removals go to a new list, and a folder that is not there still settles.
      const [next] = jobFolders(join(dir, 'c1'), 1, 301);
      await remover.remove(next!);
      await remover.remove(join(dir, 'c1', 'jobs', '999'));
      expect(lists(dir)).toEqual([['c1/jobs/301', 'c1/jobs/999']]);
      await remover.settled();
      expect(existsSync(next!)).toBe(false);
      expect(lists(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a list while a folder it names waits, whatever delete rounds end meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'folder-remover-'));
    try {
      const remover = new FolderRemover(new InThreadPool(), dir);
      const [a, b] = jobFolders(join(dir, 'c1'), 2);
      await remover.remove(a!);
      // A round starts while b is being listed: a goes, and its list with it; b's list stays.
      const listingB = remover.remove(b!);
      await remover.deleteNow();
      await listingB;
      expect(existsSync(a!)).toBe(false);
      expect(existsSync(b!)).toBe(true);
      expect(lists(dir)).toEqual([['c1/jobs/2']]);
      await remover.settled();
      expect(readdirSync(join(dir, 'c1', 'jobs'))).toEqual([]);
      expect(lists(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deletes what it could not list all the same, and what it is given to delete', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'folder-remover-'));
    try {
      const pool = new InThreadPool();
      const remover = new FolderRemover(pool, dir);
      const [a, b] = jobFolders(join(dir, 'c1'), 2);
      pool.failNext('state.appendText');
      await Promise.all([remover.remove(a!), remover.remove(b!)]);
      expect(lists(dir)).toEqual([]);
      // Outside the depot's job folders: deleted, never listed.
      const other = join(dir, 'c1', 'elsewhere');
      mkdirSync(other);
      await remover.remove(other);
      // What a daemon before left (recovery's way): its folders, then its list.
      const left = join(dir, 'c1', 'jobs', '.gone-7');
      mkdirSync(left);
      const oldList = join(dir, `${FORGOTTEN_LIST_PREFIX}old-1`);
      writeFileSync(oldList, 'c1/jobs/7\n');
      await remover.adopt([left], [oldList]);
      expect(existsSync(oldList)).toBe(false);
      await remover.settled();
      expect(readdirSync(join(dir, 'c1', 'jobs'))).toEqual([]);
      expect(existsSync(other)).toBe(false);
      expect(lists(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sets what a stopped daemon listed (or hid) apart from the jobs in the depot scan, whole lines only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'folder-remover-depot-'));
    try {
      const c = join(dir, 'c1');
      const [, two] = jobFolders(c, 13);
      writeFileSync(join(c, 'snapshot.json'), '{}');
      mkdirSync(join(c, 'jobs', '.gone-20'));
      const remover = new FolderRemover(new InThreadPool(), dir);
      await remover.remove(two!);
      // A write a full disk cut short names job 1 (of 13): not taken as a whole line.
      writeFileSync(join(dir, `${FORGOTTEN_LIST_PREFIX}old-1`), 'c1/jobs/3\nzz/jobs/4\nc1/../../etc\nc1/jobs/1');
      const scan = await depotTasks['state.scanDepot']({ depot: dir });
      expect(scan.entries.map((e) => ({ jobs: e.jobs.map((j) => j.id).sort((x, y) => x - y), hidden: e.hidden.sort() }))).toEqual([
        { jobs: [1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], hidden: [join(c, 'jobs', '.gone-20'), join(c, 'jobs', '2'), join(c, 'jobs', '3')].sort() },
      ]);
      expect(scan.forgottenLists.map((p) => p.slice(dir.length + 1)).sort()).toEqual(
        readdirSync(dir).filter((n) => n.startsWith(FORGOTTEN_LIST_PREFIX)).sort(),
      );
      expect(scan.forgottenLists).toHaveLength(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
