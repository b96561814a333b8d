// The DEA's flow (docs/dea-flow.md) end to end against the real daemon with the Linux
// backend: create with a bind mount, limits, net_in, net_out with an address range,
// run, spawn, info, a drain and restart in the middle, link, stop, copy_out with an
// owner, destroy; then nothing of it may be left on the host. Pool 10.247.128.0/24.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { LinuxDaemon, tcpExchange, waitFor, waitListening } from '../support/linux/linux-daemon.ts';
import { BindMountMode, NetOutProtocol } from '../../src/protocol/types.ts';

let d: LinuxDaemon;
let hostDir: string;

beforeAll(async () => {
  d = await LinuxDaemon.start({ pool: '10.247.128.0/24', portStart: 39000, uidStart: 57000 });
  hostDir = await mkdtemp(join(tmpdir(), 'warden-dea-'));
});

afterAll(async () => {
  await rm(hostDir, { recursive: true, force: true });
  const problems = d ? await d.cleanup() : [];
  expect(problems).toEqual([]);
});

/** The next address after ip (a.b.c.d + 1). */
function nextIp(ip: string): string {
  const n = ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0) + 1;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const t0 = Date.now();
/** Marks a step in the output, so a failure or a slow run shows where it was. */
const step = (what: string) => console.log(`dea flow +${Date.now() - t0} ms: ${what}`);

describe('the DEA flow', () => {
  it('stages and runs an app across a daemon restart, copies the droplet out and leaves nothing', async () => {
    const buildpack = join(hostDir, 'buildpack');
    await execa('mkdir', ['-p', buildpack]);
    await writeFile(join(buildpack, 'detect'), 'ruby\n');

    // A neighbour the app may talk to once the security group allows it.
    const neighbourClient = await d.client();
    const neighbour = await d.create(neighbourClient);
    await neighbourClient.spawn({ handle: neighbour.handle, script: 'while :; do echo neighbour-banner | nc -l -p 7000; done' });
    const neighbourPid = await d.initPid(neighbour.info.container_path!);
    await waitListening(neighbourPid, 7000);

    step('1. create with a read-only bind mount of the buildpacks');
    // 1. create with a read-only bind mount of the buildpacks
    const dea = await d.client();
    const { handle, info: created } = await d.create(dea, {
      grace_time: 300,
      bind_mounts: [{ src_path: buildpack, dst_path: '/tmp/buildpacks', mode: BindMountMode.RO }],
    });
    const containerPath = created.container_path!;

    step('2-3. limits, echoed back');
    // 2-3. limits, echoed back
    const mem = await dea.limitMemory({ handle, limit_in_bytes: 256 * 1024 * 1024 });
    expect(Number(mem.limit_in_bytes)).toBe(256 * 1024 * 1024);
    const disk = await dea.limitDisk({ handle, byte_limit: 512 * 1024 * 1024 });
    expect(Number(disk.byte_limit)).toBe(512 * 1024 * 1024);

    step('4. net_in from the pool');
    // 4. net_in from the pool
    const ports = await dea.netIn({ handle });
    expect(ports.host_port).toBeGreaterThanOrEqual(39000);
    expect(ports.host_port).toBeLessThan(39100);
    expect(ports.container_port).toBe(ports.host_port);

    step('5. net_out as a security group: before it, the neighbour is out of reach');
    // 5. net_out as a security group: before it, the neighbour is out of reach
    const probe = `nc -w 3 ${neighbour.info.container_ip} 7000 </dev/null; echo "rc=$?"`;
    const denied = await d.run(dea, handle, probe);
    expect(denied.stdout).not.toContain('neighbour-banner');
    await dea.netOut({
      handle,
      network: `${neighbour.info.container_ip}-${nextIp(neighbour.info.container_ip!)}`,
      port: 7000,
      protocol: NetOutProtocol.TCP,
    });
    const allowed = await d.run(dea, handle, probe);
    expect(allowed.stdout).toContain('neighbour-banner');

    step('6. staging: the buildpack is there and read-only; the droplet is written');
    // 6. staging: the buildpack is there and read-only; the droplet is written
    const staged = await d.run(
      dea,
      handle,
      'cat /tmp/buildpacks/detect; touch /tmp/buildpacks/x 2>/dev/null && echo writable; ' +
        'mkdir -p /tmp/app/sub && echo droplet > /tmp/app/droplet.txt && echo nested > /tmp/app/sub/file && echo staged',
    );
    expect(staged.exit_status).toBe(0);
    expect(staged.stdout).toBe('ruby\nstaged\n');

    step('7. spawn the app: it serves on its port and writes for a while');
    // 7. spawn the app: it serves on its port and writes for a while
    await dea.spawn({ handle, script: `while :; do echo app-says-hi | nc -l -p ${ports.container_port}; done`, discard_output: true });
    const { job_id } = await dea.spawn({ handle, script: 'for i in 1 2 3 4 5 6; do echo line$i; sleep 0.5; done; echo finished' });
    const initPid = await d.initPid(containerPath);
    await waitListening(initPid, ports.container_port!);
    const reply = await tcpExchange('127.0.0.1', ports.host_port!);
    expect(reply.data.toString()).toContain('app-says-hi');

    step('8. info: active, the job is listed, figures are there');
    // 8. info: active, the job is listed, figures are there
    const info = await (await d.client()).info({ handle });
    expect(info.state).toBe('active');
    expect(info.job_ids).toContain(job_id);
    expect(Number(info.memory_stat?.rss ?? 0) + Number(info.memory_stat?.cache ?? 0)).toBeGreaterThan(0);

    step('9. the daemon drains and a new one starts on the same depot (an upgrade)');
    // 9. the daemon drains and a new one starts on the same depot (an upgrade)
    expect(await d.daemon.drain()).toBe(0);
    await d.restart();

    step('10. link from a new connection: the whole output, also what was written meanwhile');
    // 10. link from a new connection: the whole output, also what was written meanwhile
    const after = await d.client();
    const linked = await after.link({ handle, job_id });
    expect(linked.exit_status).toBe(0);
    expect(String(linked.stdout)).toBe('line1\nline2\nline3\nline4\nline5\nline6\nfinished\n');
    // ports and rules survived the restart
    expect((await tcpExchange('127.0.0.1', ports.host_port!)).data.toString()).toContain('app-says-hi');
    expect((await d.run(after, handle, probe)).stdout).toContain('neighbour-banner');
    expect(Number((await after.limitMemory({ handle })).limit_in_bytes)).toBe(256 * 1024 * 1024);

    step('11. stop');
    // 11. stop
    await after.stop({ handle });
    expect((await after.info({ handle })).state).toBe('stopped');

    step('12. copy_out with an owner: dst_path itself and everything below belong to it');
    // 12. copy_out with an owner: dst_path itself and everything below belong to it
    const dst = join(hostDir, 'droplet');
    await after.copyOut({ handle, src_path: '/tmp/app/', dst_path: dst, owner: 'nobody' });
    const nobody = Number((await execa('id', ['-u', 'nobody'])).stdout);
    expect(await readFile(join(dst, 'droplet.txt'), 'utf8')).toBe('droplet\n');
    expect(await readFile(join(dst, 'sub', 'file'), 'utf8')).toBe('nested\n');
    for (const p of [dst, join(dst, 'droplet.txt'), join(dst, 'sub'), join(dst, 'sub', 'file')]) {
      expect((await stat(p)).uid, p).toBe(nobody);
    }

    step('13. destroy: gone from the list, its folder gone');
    // 13. destroy: gone from the list, its folder gone
    await after.destroy({ handle });
    await after.destroy({ handle: neighbour.handle });
    const { handles = [] } = await after.list();
    expect(handles).not.toContain(handle);
    await waitFor('the container folder to go', async () => !(await stat(containerPath).catch(() => undefined)));
    expect(await d.hostLeaks()).toEqual([]);
  }, 240_000);
});
