// copy in / copy out through the container's mount namespace as vcap (root).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { chmod, link, lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTestHost, type TestHost } from '../support/linux/linux-host.ts';
import { linuxTasks } from '../../src/backends/linux/tasks.ts';
import type { ContainerRecord } from '../../src/model/records.ts';

let t: TestHost;
let c: ContainerRecord;
let src: string;

beforeAll(async () => {
  t = await makeTestHost();
  c = await t.create();
  src = join(t.base, 'src', 'app');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'run.sh'), '#!/bin/sh\necho hi\n');
  await chmod(join(src, 'run.sh'), 0o750);
  await writeFile(join(src, 'sub', 'data'), 'data');
  await link(join(src, 'sub', 'data'), join(src, 'hard'));
  await symlink('sub/data', join(src, 'rel-link'));
});

afterAll(async () => {
  await t?.cleanup();
});

it('copies a folder in (itself without a trailing slash, its contents with one), owned by vcap', async () => {
  await linuxTasks['linux.copyIn']({ c, src, dst: '/home/vcap/in' });
  await linuxTasks['linux.copyIn']({ c, src: `${src}/`, dst: '/home/vcap/flat' });
  const r = await t.job(c, [
    'cd /home/vcap',
    'stat -c "%n %a %u" in/app/run.sh flat/run.sh',
    'readlink flat/rel-link',
    'stat -c "%h" flat/hard flat/sub/data',
    'cat flat/hard',
  ].join('\n'));
  expect(r.stderr).toBe('');
  expect(r.stdout.split('\n')).toEqual([
    `in/app/run.sh 750 ${c.uid}`,
    `flat/run.sh 750 ${c.uid}`,
    'sub/data',
    '1', '1', // hard links materialised: two separate files
    'data',
  ]);
});

it('copies out owned by root, or chowned to owner', async () => {
  await t.job(c, 'mkdir -p ~/out/d && echo result > ~/out/d/file && chmod 640 ~/out/d/file');
  const dst = join(t.base, 'copy-out');
  await linuxTasks['linux.copyOut']({ c, src: '/home/vcap/out/', dst });
  const st = await stat(join(dst, 'd', 'file'));
  expect(await readFile(join(dst, 'd', 'file'), 'utf8')).toBe('result\n');
  expect(st.uid).toBe(0);
  expect(st.mode & 0o777).toBe(0o640);

  const owned = join(t.base, 'copy-out-owned');
  await linuxTasks['linux.copyOut']({ c, src: '/home/vcap/out', dst: owned, owner: 'nobody:nogroup' });
  expect((await stat(join(owned, 'out', 'd', 'file'))).uid).toBe(65534);
});

it('copies a symlink to /etc/shadow out as a link, never the host file', async () => {
  await t.job(c, 'mkdir -p ~/evil && ln -s /etc/shadow ~/evil/shadow && ln -s /etc ~/evil/etc');
  const dst = join(t.base, 'evil-out');
  await linuxTasks['linux.copyOut']({ c, src: '/home/vcap/evil/', dst });
  const l = await lstat(join(dst, 'shadow'));
  expect(l.isSymbolicLink()).toBe(true);
  expect(await readlink(join(dst, 'shadow'))).toBe('/etc/shadow');
  // Copying the link itself out gives the link as well.
  const dst2 = join(t.base, 'evil-out-2');
  await linuxTasks['linux.copyOut']({ c, src: '/home/vcap/evil/shadow', dst: dst2 });
  expect((await lstat(join(dst2, 'shadow'))).isSymbolicLink()).toBe(true);
});

it('resolves copy-in destinations inside the container: a symlink to /etc never reaches the host', async () => {
  const file = join(t.base, 'payload');
  await writeFile(file, 'pwned\n');
  const hostBefore = await stat('/etc/warden-payload').catch(() => undefined);
  await expect(linuxTasks['linux.copyIn']({ c, src: file, dst: '/home/vcap/evil/etc' })).rejects.toThrow(/copy_in/);
  expect(hostBefore).toBeUndefined();
  expect(await stat('/etc/payload').catch(() => undefined)).toBeUndefined();
});

it('fails clearly on a missing source', async () => {
  await expect(linuxTasks['linux.copyIn']({ c, src: '/nonexistent/x', dst: '/tmp' })).rejects.toThrow(/does not exist/);
  await expect(linuxTasks['linux.copyOut']({ c, src: '/nonexistent/x', dst: join(t.base, 'none') })).rejects.toThrow(/copy_out/);
});
