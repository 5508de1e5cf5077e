// The flow settings panel: form controls (rendered by the template, labels
// translated there) for the document's flow-level fields — name, launch
// limit, time zone, start and end (SPEC §6, §11). Each change writes the
// maestra.flow/1 shapes into the canvas's document and goes through its
// autosave and undo like any other edit; the server's validation errors for
// these fields come back beside their controls.

import { showFieldErrors } from "./node-forms.js";
import { GoalExitSettings } from "./flow-goal-settings.js"; // goal hook

const MODES = ["every_time", "once", "periodic"];
// ISO 8601 periods the panel writes as number + unit; anything else is kept
// and edited as text ("other").
const PERIOD = /^P(?:(\d+)M|(\d+)W|(\d+)D|T(\d+)H)$/;
const UNITS = ["PT{n}H", "P{n}D", "P{n}W", "P{n}M"];
export const SETTINGS_FIELDS = ["name", "timezone", "launch_limit", "schedule", "goal", "exit"];

export function isSettingsError(error) {
  const field = (error && !error.node && error.field) || "";
  return SETTINGS_FIELDS.some((name) => field === name || field.startsWith(`${name}.`));
}

// --- dates in a time zone ------------------------------------------------------------

function knownZone(zone) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function wallParts(millis, zone) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(millis));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"), second: get("second") };
}

// Minutes to add to UTC to get the zone's wall time at that instant.
function offsetAt(millis, zone) {
  const w = wallParts(millis, zone);
  return Math.round((Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second) - Math.floor(millis / 1000) * 1000) / 60000);
}

const pad = (n, size = 2) => String(Math.abs(n)).padStart(size, "0");

function formatOffset(minutes) {
  return `${minutes < 0 ? "-" : "+"}${pad(Math.trunc(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

// "2030-01-15T09:30" read in `zone` -> "2030-01-15T09:30:00+01:00". A wall
// time skipped by a DST change moves forward, like the engine's schedules.
export function wallToIso(wall, zone) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(wall || "");
  if (!match) return null;
  const [year, month, day, hour, minute] = match.slice(1).map(Number);
  const guess = Date.UTC(year, month - 1, day, hour, minute);
  let instant = guess - offsetAt(guess, zone) * 60000;
  instant = guess - offsetAt(instant, zone) * 60000;
  const w = wallParts(instant, zone);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}:00${formatOffset(offsetAt(instant, zone))}`;
}

// An ISO date and time with an offset -> "YYYY-MM-DDTHH:MM" in `zone`.
export function isoToWall(iso, zone) {
  const millis = typeof iso === "string" ? Date.parse(iso) : NaN;
  if (Number.isNaN(millis)) return "";
  const w = wallParts(millis, zone);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}`;
}

// --- the panel -------------------------------------------------------------------------

export class FlowSettings {
  constructor(root, canvas) {
    this.root = root;
    this.canvas = canvas;
    this.t = canvas.t.bind(canvas);
    const $ = (selector) => root.querySelector(selector);
    this.name = $("#fe-set-name");
    this.mode = $("#fe-limit-mode");
    this.amount = $("#fe-period-amount");
    this.unit = $("#fe-period-unit");
    this.iso = $("#fe-period-iso");
    this.maxTotal = $("#fe-max-total");
    this.timezone = $("#fe-timezone");
    this.start = $("#fe-start-at");
    this.end = $("#fe-end-at");
    this.pageName = document.getElementById("id_name");
    this.goalExit = new GoalExitSettings(root, canvas); // goal hook
    this.bind();
    this.render(canvas.doc);
    if (!canvas.editable) {
      for (const el of root.querySelectorAll("input, select, textarea, button")) el.disabled = true;
    }
  }

  get doc() {
    return this.canvas.doc;
  }

  zone() {
    const zone = this.doc.timezone;
    return typeof zone === "string" && zone && knownZone(zone) ? zone : "UTC";
  }

  bind() {
    this.name.addEventListener("input", () => {
      this.doc.name = this.name.value;
      if (this.pageName) this.pageName.value = this.name.value;
      this.canvas.renamed(this.name.value);
      this.canvas.changed("settings:name");
    });
    // The change form's name (below the editor) and this one are the same setting.
    if (this.pageName && this.canvas.editable) {
      this.pageName.addEventListener("input", () => {
        this.name.value = this.pageName.value;
        this.doc.name = this.pageName.value;
        this.canvas.renamed(this.pageName.value);
        this.canvas.changed("settings:name");
      });
    }
    this.mode.addEventListener("change", () => { this.showModeFields(); this.writeLimit(); });
    this.unit.addEventListener("change", () => {
      const custom = this.unit.value === "custom";
      this.iso.hidden = !custom;
      this.amount.hidden = custom;
      if (custom && !this.iso.value) this.iso.value = this.period() || "";
      this.writeLimit();
    });
    this.amount.addEventListener("input", () => this.writeLimit("settings:period"));
    this.iso.addEventListener("input", () => this.writeLimit("settings:period"));
    this.maxTotal.addEventListener("input", () => this.writeLimit("settings:max_total"));
    // A zone is written when it is chosen (change), not at each key typed.
    this.timezone.addEventListener("change", () => this.writeTimezone());
    for (const input of [this.start, this.end]) input.addEventListener("change", () => this.writeSchedule());
    for (const button of this.root.querySelectorAll("[data-clear]")) {
      button.addEventListener("click", () => {
        this.root.querySelector(`#${button.dataset.clear}`).value = "";
        this.writeSchedule();
      });
    }
  }

  // The document -> the controls (on load, and after undo/redo).
  render(doc) {
    this.name.value = doc.name ?? "";
    const limit = doc.launch_limit && typeof doc.launch_limit === "object" ? doc.launch_limit : {};
    const mode = limit.mode ?? "every_time";
    if (!MODES.includes(mode) && ![...this.mode.options].some((o) => o.value === mode)) {
      this.mode.append(new Option(`${mode} (${this.t("unknown")})`, mode));
    }
    this.mode.value = mode;
    const period = typeof limit.period === "string" ? limit.period : "";
    const match = PERIOD.exec(period);
    if (match) {
      this.unit.value = match[1] ? "P{n}M" : match[2] ? "P{n}W" : match[3] ? "P{n}D" : "PT{n}H";
      this.amount.value = match[1] || match[2] || match[3] || match[4];
      this.iso.value = "";
    } else if (period) {
      this.unit.value = "custom";
      this.iso.value = period;
      this.amount.value = "";
    } else if (document.activeElement !== this.amount) {
      this.amount.value = "";
    }
    this.iso.hidden = this.unit.value !== "custom";
    this.amount.hidden = this.unit.value === "custom";
    this.maxTotal.value = limit.max_total ?? "";
    this.timezone.value = typeof doc.timezone === "string" ? doc.timezone : "";
    const schedule = doc.schedule && typeof doc.schedule === "object" ? doc.schedule : {};
    const zone = this.zone();
    this.start.value = isoToWall(schedule.start_at, zone);
    this.end.value = isoToWall(schedule.end_at, zone);
    for (const hint of this.root.querySelectorAll(".fe-zone-name")) hint.textContent = zone;
    this.showModeFields();
    this.goalExit.render(doc); // goal hook
  }

  showModeFields() {
    for (const el of this.root.querySelectorAll("[data-when-mode]")) {
      el.hidden = !el.dataset.whenMode.split(" ").includes(this.mode.value);
    }
  }

  period() {
    if (this.unit.value === "custom") return this.iso.value.trim() || null;
    if (this.amount.value === "") return null;
    return this.unit.value.replace("{n}", String(Math.max(0, Math.round(Number(this.amount.value)))));
  }

  writeLimit(group = null) {
    const mode = this.mode.value;
    const total = this.maxTotal.value === "" ? null : Number(this.maxTotal.value);
    // Only a periodic limit has a period, and "once" has no total cap: the
    // document holds what the controls show.
    this.doc.launch_limit = {
      mode,
      period: mode === "periodic" ? this.period() : null,
      max_total: mode === "once" ? null : total,
    };
    this.canvas.changed(group);
  }

  writeTimezone() {
    const before = this.zone();
    const starts = this.start.value;
    const ends = this.end.value;
    const zone = this.timezone.value.trim();
    if (zone) this.doc.timezone = zone;
    else delete this.doc.timezone;
    // Start and end keep their wall time in the new zone.
    if (before !== this.zone() && (starts || ends)) this.writeSchedule({ record: false });
    for (const hint of this.root.querySelectorAll(".fe-zone-name")) hint.textContent = this.zone();
    this.canvas.changed();
  }

  writeSchedule({ record = true } = {}) {
    const zone = this.zone();
    const schedule = this.doc.schedule && typeof this.doc.schedule === "object" ? this.doc.schedule : {};
    this.doc.schedule = {
      ...schedule,
      start_at: this.start.value ? wallToIso(this.start.value, zone) : null,
      end_at: this.end.value ? wallToIso(this.end.value, zone) : null,
    };
    if (record) this.canvas.changed();
  }

  showErrors(errors) {
    showFieldErrors(this.root, errors.filter(isSettingsError));
  }

  // Opens the panel at the control of a settings error.
  focusField(field) {
    for (let parts = (field || "").split("."); parts.length; parts.pop()) {
      const target = this.root.querySelector(`.nf-field[data-field="${CSS.escape(parts.join("."))}"]`);
      if (target && !target.hidden) {
        const control = target.querySelector("input:not([hidden]), select, textarea");
        if (control) control.focus();
        return;
      }
    }
  }
}
