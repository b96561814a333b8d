// execa, loaded on first use: importing it costs ~80 ms of a worker's start, and
// a restarting daemon waits for its workers, while only copies use it.
type Execa = typeof import('execa');

let loading: Promise<Execa> | undefined;

export function loadExeca(): Promise<Execa> {
  return (loading ??= import('execa'));
}
