/**
 * A binary min-heap of page views ordered by (last recv_ms, page_view_id). The key of an entry
 * may lag behind its page view's current last recv_ms: the partition re-queues such an entry when
 * it surfaces, so a page view is queued once however many events it receives.
 */
export interface ExpiryEntry<T> {
  readonly lastRecvMs: number;
  readonly id: string;
  readonly item: T;
}

export class ExpiryQueue<T> {
  private readonly heap: ExpiryEntry<T>[] = [];

  get size(): number {
    return this.heap.length;
  }

  peek(): ExpiryEntry<T> | undefined {
    return this.heap[0];
  }

  push(entry: ExpiryEntry<T>): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      const p = heap[parent];
      if (p === undefined || !before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  pop(): ExpiryEntry<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const l = heap[left];
      const r = heap[left + 1];
      let child = left;
      let c = l;
      if (r !== undefined && l !== undefined && before(r, l)) {
        child = left + 1;
        c = r;
      }
      if (c === undefined || !before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function before<T>(a: ExpiryEntry<T>, b: ExpiryEntry<T>): boolean {
  return a.lastRecvMs < b.lastRecvMs || (a.lastRecvMs === b.lastRecvMs && a.id < b.id);
}
