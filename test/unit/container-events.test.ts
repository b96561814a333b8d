// The /dev/kmsg record parser of the container events watcher: which containers an
// `oom-kill:` record names, and which records (replayed, already seen) it skips.
import { describe, expect, it } from 'vitest';
import { parseOomRecord } from '../../src/backends/linux/container-events.ts';

// A record as this host's kernel (6.x) writes it.
const OOM =
  '6,4707,2357027165,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=instance-d27c5pm5kda,mems_allowed=0,' +
  'oom_memcg=/process_api/1d15/warden-1b12/instance-d27c5pm5kda,task_memcg=/process_api/1d15/warden-1b12/instance-d27c5pm5kda,task=dd,pid=32425,uid=53000';

describe('parseOomRecord', () => {
  it('names the container of an oom-kill record once', () => {
    expect(parseOomRecord(OOM, 0, -1)).toEqual({ seq: 4707, ids: ['d27c5pm5kda'] });
  });

  it('names both groups when the limit hit is a parent\'s', () => {
    const r = OOM.replace('oom_memcg=/process_api/1d15/warden-1b12/instance-d27c5pm5kda', 'oom_memcg=/process_api/1d15/warden-1b12');
    expect(parseOomRecord(r.replace('cpuset=instance-d27c5pm5kda', 'cpuset=/'), 0, -1)?.ids).toEqual(['d27c5pm5kda']);
  });

  it('skips records from before the reader started, and ones already seen', () => {
    expect(parseOomRecord(OOM, 2357027166, -1)).toEqual({ seq: 4707, ids: [] });
    expect(parseOomRecord(OOM, 0, 4707)).toBeUndefined();
  });

  it('reports other records only by their sequence number', () => {
    expect(parseOomRecord('4,4596,2357026851,-;dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL)', 0, -1)).toEqual({ seq: 4596, ids: [] });
    expect(parseOomRecord('no header here', 0, -1)).toBeUndefined();
  });
});
