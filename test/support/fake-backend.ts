// A Backend (src/backends/backend.ts) for orchestrator unit tests: it keeps its
// "host" in memory (which containers exist, how far their create got, their
// limits and rules), runs jobs as plain local processes (/bin/bash, like the
// insecure backend), and records every call. Knobs make a step fail once or
// always, and gates hold a step until the test lets it go, to order concurrent
// requests without sleeping. Test-only: never imported by src/.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, ContainerDeathEvent, JobLaunch, JobSpec, RecoverOutcome } from '../../src/backends/backend.ts';
import type { ContainerRecord, NetOutRule } from '../../src/model/records.ts';
import type { CopyInRequest, CopyOutRequest, DiskLimits, InfoResponse, U64 } from '../../src/protocol/types.ts';
import { jobTasks } from '../../src/jobs/job-tasks.ts';

/** The steps a test can make fail or hold. */
export type FakeStep =
  | 'create'
  | 'destroy'
  | 'stop'
  | 'recover'
  | 'info'
  | 'netIn'
  | 'netOut'
  | 'copyIn'
  | 'copyOut'
  | 'limitMemory'
  | 'limitCpu'
  | 'limitBandwidth'
  | 'limitDisk'
  | 'killJob'
  | 'sweep';

export interface FakeCall {
  step: FakeStep;
  id: string;
  detail?: unknown;
}

/** What the fake "host" holds for one container. */
export interface FakeHostContainer {
  id: string;
  /** 'half': a create that failed half-way left this behind; 'made': created or adopted. */
  stage: 'half' | 'made';
  stopped: boolean;
  netIn: Array<{ hostPort: number; containerPort: number }>;
  netOut: NetOutRule[];
  memory: U64;
  cpuShares: U64;
  bandwidth?: { rate: number; burst: number };
  disk: DiskLimits;
}

/** The kernel's "no limit" of memory.limit_in_bytes. */
export const UNLIMITED_MEMORY = 9223372036854771712n;

interface Fault {
  error: Error;
  times: number;
  /** Only for this container id (default: any). */
  id?: string;
}

export interface Gate {
  /** Resolves when a call has reached the gate (and waits there). */
  readonly reached: Promise<void>;
  /** Lets the waiting call through. */
  release(): void;
}

export class FakeBackend implements Backend {
  readonly name: 'linux' | 'insecure';
  readonly host = new Map<string, FakeHostContainer>();
  readonly calls: FakeCall[] = [];
  /** Ids `oomKilled` answers true for. */
  readonly oomKilledIds = new Set<string>();
  /** Ids `recoverAll` finds gone (their processes are gone), though the host still holds them. */
  readonly lostIds = new Set<string>();
  private readonly faults = new Map<FakeStep, Fault[]>();
  private readonly gates = new Map<FakeStep, { open: Promise<void>; arrived: () => void }>();
  private listener: ((e: ContainerDeathEvent) => void) | undefined;
  sweptWith: Set<string> | undefined;

  constructor(opts: { name?: 'linux' | 'insecure' } = {}) {
    // 'linux' by default: the orchestrator refuses limits for 'insecure'.
    this.name = opts.name ?? 'linux';
  }

  // ---- knobs -------------------------------------------------------------------------

  /** The next `times` calls of step (for container `id`, if given) fail with error (Infinity: every call). */
  fail(step: FakeStep, opts: { error?: Error; times?: number; id?: string } = {}): void {
    const list = this.faults.get(step) ?? [];
    list.push({ error: opts.error ?? new Error(`${step} failed (injected by the test)`), times: opts.times ?? 1, id: opts.id });
    this.faults.set(step, list);
  }

  /** The next call of step (that one only) waits until the gate is released. */
  hold(step: FakeStep): Gate {
    let release!: () => void;
    let arrived!: () => void;
    const open = new Promise<void>((r) => (release = r));
    const reached = new Promise<void>((r) => (arrived = r));
    this.gates.set(step, { open, arrived });
    return { reached, release };
  }

  /** Report a death as the kernel would (an OOM kill, an init that ended). */
  emit(e: ContainerDeathEvent): void {
    this.listener?.(e);
  }

  /** Steps called for one container, in order. */
  stepsOf(id: string): FakeStep[] {
    return this.calls.filter((c) => c.id === id).map((c) => c.step);
  }

  private async enter(step: FakeStep, id: string, detail?: unknown): Promise<void> {
    this.calls.push({ step, id, ...(detail === undefined ? {} : { detail }) });
    // Like the real backends, the work happens on a later turn.
    await Promise.resolve();
    const gate = this.gates.get(step);
    if (gate) {
      // Only this call waits; later calls of the step go through.
      this.gates.delete(step);
      gate.arrived();
      await gate.open;
    }
    const fault = this.faults.get(step)?.find((f) => f.times > 0 && (f.id === undefined || f.id === id));
    if (fault) {
      fault.times--;
      throw fault.error;
    }
  }

  private made(c: ContainerRecord): FakeHostContainer {
    const h = this.host.get(c.id);
    if (!h || h.stage !== 'made') throw new Error(`fake backend: container ${c.id} does not exist on the host`);
    return h;
  }

  // ---- Backend ---------------------------------------------------------------------

  async setupHost(): Promise<void> {}

  async sweep(claimedIds: Set<string>): Promise<void> {
    await this.enter('sweep', '');
    this.sweptWith = new Set(claimedIds);
    for (const id of [...this.host.keys()]) if (!claimedIds.has(id)) this.host.delete(id);
  }

  async create(c: ContainerRecord): Promise<void> {
    // Half-way first: a failure below leaves this behind, as a cut create would.
    this.host.set(c.id, {
      id: c.id, stage: 'half', stopped: false, netIn: [], netOut: [], memory: UNLIMITED_MEMORY, cpuShares: 1024, disk: {},
    });
    await mkdir(join(c.path, 'root'), { recursive: true });
    await this.enter('create', c.id);
    this.host.get(c.id)!.stage = 'made';
    c.backend = { fake: true };
  }

  /** One 'recover' call per container (a failure knob fails that one container's outcome). */
  async recoverAll(cs: ContainerRecord[]): Promise<RecoverOutcome[]> {
    return Promise.all(
      cs.map(async (c): Promise<RecoverOutcome> => {
        try {
          await this.enter('recover', c.id);
        } catch (err) {
          return { error: (err as Error).message };
        }
        const h = this.host.get(c.id);
        return { alive: h !== undefined && h.stage === 'made' && !this.lostIds.has(c.id) };
      }),
    );
  }

  async stop(c: ContainerRecord, kill: boolean): Promise<void> {
    await this.enter('stop', c.id, { kill });
    await this.signalJobs(c, kill ? 'SIGKILL' : 'SIGTERM');
    const h = this.host.get(c.id);
    if (h) h.stopped = true;
  }

  async destroy(c: ContainerRecord): Promise<void> {
    await this.enter('destroy', c.id);
    await this.signalJobs(c, 'SIGKILL');
    await rm(join(c.path, 'root'), { recursive: true, force: true });
    this.host.delete(c.id);
  }

  jobLaunch(c: ContainerRecord, job: JobSpec): JobLaunch {
    return { argv: ['/bin/bash'], env: { ...job.env, HOME: c.path }, cwd: c.path };
  }

  async killJob(c: ContainerRecord, job: { id: number; dir: string }): Promise<void> {
    await this.enter('killJob', c.id, { job: job.id });
    await signalDir(job.dir, 'SIGKILL');
  }

  async info(c: ContainerRecord): Promise<InfoResponse> {
    await this.enter('info', c.id);
    this.made(c);
    return {};
  }

  async netIn(c: ContainerRecord, hostPort: number, containerPort: number): Promise<void> {
    await this.enter('netIn', c.id, { hostPort, containerPort });
    this.made(c).netIn.push({ hostPort, containerPort });
  }

  async netOut(c: ContainerRecord, rule: NetOutRule): Promise<void> {
    await this.enter('netOut', c.id, rule);
    this.made(c).netOut.push(rule);
  }

  async copyIn(c: ContainerRecord, req: CopyInRequest): Promise<void> {
    await this.enter('copyIn', c.id, { src: req.src_path, dst: req.dst_path });
  }

  async copyOut(c: ContainerRecord, req: CopyOutRequest): Promise<void> {
    await this.enter('copyOut', c.id, { src: req.src_path, dst: req.dst_path });
  }

  async limitMemory(c: ContainerRecord, bytes: U64 | undefined): Promise<U64> {
    await this.enter('limitMemory', c.id, bytes);
    const h = this.made(c);
    if (bytes !== undefined) h.memory = bytes;
    return h.memory;
  }

  async limitCpu(c: ContainerRecord, shares: U64 | undefined): Promise<U64> {
    await this.enter('limitCpu', c.id, shares);
    const h = this.made(c);
    // The kernel raises 1 to 2.
    if (shares !== undefined) h.cpuShares = Number(shares) < 2 ? 2 : shares;
    return h.cpuShares;
  }

  async limitBandwidth(c: ContainerRecord, rate: number, burst: number): Promise<void> {
    await this.enter('limitBandwidth', c.id, { rate, burst });
    this.made(c).bandwidth = { rate, burst };
  }

  async limitDisk(c: ContainerRecord, limits: DiskLimits): Promise<DiskLimits> {
    await this.enter('limitDisk', c.id, limits);
    const h = this.made(c);
    if (Object.keys(limits).length > 0) h.disk = { ...limits };
    return { ...h.disk };
  }

  onContainerEvent(listener: (e: ContainerDeathEvent) => void): void {
    this.listener = listener;
  }

  async oomKilled(c: ContainerRecord): Promise<boolean> {
    return this.oomKilledIds.has(c.id);
  }

  /** Signals the process group of every running job of c (their supervisors record the end). */
  private async signalJobs(c: ContainerRecord, signal: NodeJS.Signals): Promise<void> {
    const running = c.jobs.filter((j) => j.state === 'running');
    await Promise.all(running.map((j) => signalDir(join(c.path, 'jobs', String(j.id)), signal)));
  }
}

/**
 * Signals a job's process group as the insecure backend does (the job.signal task,
 * run here in the test's thread): it waits a moment for the pid file of a job
 * that is just starting.
 */
async function signalDir(dir: string, signal: NodeJS.Signals): Promise<void> {
  await jobTasks['job.signal']({ dir, signal });
}
