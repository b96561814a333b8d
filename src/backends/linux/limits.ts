// limit_memory, limit_cpu, limit_disk: cgroup files and btrfs qgroups.
import type { DiskLimits, U64 } from '../../protocol/types.ts';
import { parseU64, toBigInt, u64 } from '../../protocol/u64.ts';
import type { CgroupPaths } from './cgroups/cgroups.ts';
import { setCpuShares, setMemoryLimit } from './cgroups/cgroups.ts';
import { setByteLimit, type SubvolumeInfo } from './disk/subvolume.ts';
import { join } from 'node:path';
import { readKernelFile, readKernelFileSync } from '../../host/kernel-file.ts';
import { WardenError } from '../../model/errors.ts';

/** Quota blocks are 1 KiB, as in the original (setquota units). */
const BLOCK = 1024;

const INODE_FIELDS = ['inode_limit', 'inode', 'inode_soft', 'inode_hard'] as const;

/**
 * The byte limit a LimitDisk request asks for: byte_* fields first, then block_*
 * fields (1 KiB blocks); hard over soft over the plain aliases. undefined when none
 * is given; 0 clears.
 */
export function diskByteLimit(l: DiskLimits | undefined): U64 | undefined {
  if (!l) return undefined;
  const bytes = l.byte_hard || l.byte_limit || l.byte || l.byte_soft;
  if (bytes) return bytes;
  const blocks = l.block_hard || l.block_limit || l.block || l.block_soft;
  if (blocks) return u64(toBigInt(blocks) * BigInt(BLOCK));
  const given = [l.byte_hard, l.byte_limit, l.byte, l.byte_soft, l.block_hard, l.block_limit, l.block, l.block_soft];
  return given.some((v) => v === 0) ? 0 : undefined;
}

/** Throws a clear error when the request sets an inode limit: btrfs qgroups count bytes only. */
export function checkDiskLimits(l: DiskLimits): void {
  for (const f of INODE_FIELDS) {
    if (l[f]) throw new WardenError(`limit_disk: ${f} is not supported by this backend (btrfs qgroups limit bytes only)`, { code: 'invalid' });
  }
}

/** The limits in force, in every alias of the message (hard and plain aliases; no soft limits). */
export function diskLimitsInForce(bytes: U64): DiskLimits {
  const blocks = u64((toBigInt(bytes) + BigInt(BLOCK - 1)) / BigInt(BLOCK));
  return {
    byte_limit: bytes, byte: bytes, byte_hard: bytes, byte_soft: 0,
    block_limit: blocks, block: blocks, block_hard: blocks, block_soft: 0,
    inode_limit: 0, inode: 0, inode_hard: 0, inode_soft: 0,
  };
}

export async function currentByteLimit(info: SubvolumeInfo): Promise<U64> {
  if (!info.btrfs || !info.fsid || info.subvolId === undefined) return 0;
  try {
    const n = parseU64(await readKernelFile(`/sys/fs/btrfs/${info.fsid}/qgroups/0_${info.subvolId}/max_referenced`));
    // No limit reads as 2^64-1 (or "none"): report 0, as setquota's "no limit".
    return n !== undefined && n > 0 && n < 2n ** 63n ? n : 0;
  } catch {
    return 0;
  }
}

export async function limitDisk(subvolumePath: string, info: SubvolumeInfo, limits: DiskLimits): Promise<DiskLimits> {
  checkDiskLimits(limits);
  const bytes = diskByteLimit(limits);
  if (bytes !== undefined) {
    if (!info.btrfs) throw new WardenError('limit_disk: disk quotas are disabled (quota.disk_quota_enabled is false and the depot is not btrfs)', { code: 'invalid' });
    await setByteLimit(subvolumePath, bytes, info);
  }
  return diskLimitsInForce(bytes ?? (await currentByteLimit(info)));
}

/** Sets the limit when one is given; returns memory.limit_in_bytes as the kernel has it (9223372036854771712: none). */
export async function limitMemory(paths: CgroupPaths, bytes: U64 | undefined): Promise<U64> {
  if (bytes !== undefined) await setMemoryLimit(paths, bytes);
  return readU64(join(paths.memory ?? '', 'memory.limit_in_bytes'));
}

/** Sets the shares when given; returns cpu.shares as the kernel has it (it raises 1 to 2). */
export async function limitCpu(paths: CgroupPaths, shares: U64 | undefined): Promise<U64> {
  if (shares !== undefined) await setCpuShares(paths, shares);
  return readU64(join(paths.cpu ?? '', 'cpu.shares'));
}

/** Blocking, as the writes before it (limits run in a worker). */
async function readU64(file: string): Promise<U64> {
  const text = readKernelFileSync(file);
  const v = parseU64(text);
  if (v === undefined) throw new Error(`unexpected content of ${file}: ${JSON.stringify(text.slice(0, 40))}`);
  return v;
}
