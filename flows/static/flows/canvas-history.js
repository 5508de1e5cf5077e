// Undo and redo of the canvas. The document is the source of truth, so the
// history keeps whole documents (as JSON text): undoing any edit — a node
// added, moved or deleted, an edge drawn or removed, a side-panel field, a
// flow setting, a tidy-up — is drawing the previous document again. Typing
// in one field makes one entry, not one per key.

const COALESCE_MS = 1500;

export class History {
  constructor({ limit = 100 } = {}) {
    this.limit = limit;
    this.entries = [];
    this.index = -1;
    this.sealed = true;
  }

  reset(snapshot) {
    this.entries = [{ snapshot, group: null, at: 0 }];
    this.index = 0;
    this.sealed = true;
  }

  get current() {
    return this.index >= 0 ? this.entries[this.index].snapshot : null;
  }

  get canUndo() {
    return this.index > 0;
  }

  get canRedo() {
    return this.index < this.entries.length - 1;
  }

  // Records a new state; false when nothing changed. Consecutive changes of
  // the same group (one field being typed in, one node moved by the arrow
  // keys) within a short pause replace each other.
  record(snapshot, group = null) {
    if (snapshot === this.current) return false;
    const now = performance.now();
    const top = this.entries[this.index];
    const atEnd = this.index === this.entries.length - 1;
    if (group && !this.sealed && atEnd && this.index > 0 && top.group === group && now - top.at < COALESCE_MS) {
      top.snapshot = snapshot;
      top.at = now;
      return true;
    }
    this.entries.splice(this.index + 1);
    this.entries.push({ snapshot, group, at: now });
    if (this.entries.length > this.limit) this.entries.shift();
    this.index = this.entries.length - 1;
    this.sealed = false;
    return true;
  }

  undo() {
    if (!this.canUndo) return null;
    this.index -= 1;
    this.sealed = true;
    return this.entries[this.index].snapshot;
  }

  redo() {
    if (!this.canRedo) return null;
    this.index += 1;
    this.sealed = true;
    return this.entries[this.index].snapshot;
  }
}
