// CopyIn and CopyOut: the request's paths are checked here; the backend moves
// the bytes, treating whatever the container sends as hostile (src/host/untrusted-unpack.ts).
import { WardenError } from '../model/errors.ts';
import { checkPathText } from '../model/request-paths.ts';
import type * as M from '../protocol/types.ts';
import type { Core, RequestContext } from './core.ts';

export async function copyIn(core: Core, req: M.CopyInRequest, ctx: RequestContext): Promise<M.CopyInResponse> {
  const c = core.lookup(req.handle, ctx);
  c.assertState('active');
  checkPathText('src_path', req.src_path);
  checkPathText('dst_path', req.dst_path);
  if (!req.src_path.startsWith('/')) throw new WardenError(`src_path must be an absolute host path: ${req.src_path}`);
  await core.backend.copyIn(c.record, req);
  return {};
}

export async function copyOut(core: Core, req: M.CopyOutRequest, ctx: RequestContext): Promise<M.CopyOutResponse> {
  const c = core.lookup(req.handle, ctx);
  c.assertState('active', 'stopped');
  checkPathText('src_path', req.src_path);
  checkPathText('dst_path', req.dst_path);
  if (!req.dst_path.startsWith('/')) throw new WardenError(`dst_path must be an absolute host path: ${req.dst_path}`);
  if (req.owner && !/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/.test(req.owner)) {
    throw new WardenError(`invalid owner ${JSON.stringify(req.owner)}: expected user or user:group`);
  }
  await core.backend.copyOut(c.record, req);
  return {};
}
