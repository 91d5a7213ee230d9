// Text that arrives in chunks (a pipe, a socket) cut into its newline-ended
// lines: the heartbeat pipe and both ends of the control socket read this way.

export class LineSplitter {
  /** What has come after the last newline: a line still arriving. */
  pending = '';

  /** The lines `chunk` completes, in order, without their newlines. */
  push(chunk: string): string[] {
    const lines = (this.pending + chunk).split('\n');
    this.pending = lines.pop()!;
    return lines;
  }
}
