// The flow's goal and exit criteria in the settings panel (SPEC §13): a
// checkbox each, then the event, the filter on its payload (the rule
// builder, node-forms.js criteriaFields), and for the goal its window and
// value field. Writes the maestra.flow/1 shapes into the canvas's document
// ("goal": {...} | null, "exit": {...} | null) through its autosave and undo.

import { criteriaFields, durationInput, h } from "./node-forms.js";

const gettext = (text) => (typeof window.gettext === "function" ? window.gettext(text) : text);

const NEW_GOAL = () => ({ event_type: "order_created", filter: null, window: "P7D", value_field: null });
const NEW_EXIT = () => ({ event_type: "", filter: null });

export class GoalExitSettings {
  constructor(root, canvas) {
    this.canvas = canvas;
    this.box = h("div", { className: "fe-goal-exit" });
    root.append(this.box);
  }

  changed(group = null) {
    this.canvas.changed(group);
  }

  // The document -> the controls (on load, and after undo/redo).
  render(doc) {
    this.box.replaceChildren(this.section(doc, "goal"), this.section(doc, "exit"));
    if (!this.canvas.editable) {
      for (const el of this.box.querySelectorAll("input, select, textarea, button")) el.disabled = true;
    }
  }

  section(doc, name) {
    const isGoal = name === "goal";
    const value = doc[name] && typeof doc[name] === "object" ? doc[name] : null;
    const toggle = h("input", {
      type: "checkbox", id: `fe-${name}-on`, checked: !!value,
      onchange: (e) => {
        doc[name] = e.target.checked ? (isGoal ? NEW_GOAL() : NEW_EXIT()) : null;
        this.changed();
        this.render(doc);
      },
    });
    const parts = [h("legend", {}, isGoal ? gettext("Goal") : gettext("Exit criteria")),
      h("div", { className: "nf-field", "data-field": name },
        h("label", { for: toggle.id }, toggle, " ",
          isGoal ? gettext("Count conversions: a customer converts with this event after entering")
            : gettext("Take customers out of the flow at once when this event arrives")),
        h("div", { className: "nf-error" }))];
    if (value) {
      parts.push(...criteriaFields(value, () => this.changed(`settings:${name}`), {
        prefix: `${name}.`, typeLabel: isGoal ? gettext("Goal event") : gettext("Exit event"),
      }));
      if (isGoal) {
        parts.push(
          h("div", { className: "nf-field", "data-field": "goal.window" },
            h("span", { className: "fe-label" }, gettext("Within")),
            durationInput(value.window || "P7D", (v) => { value.window = v; this.changed("settings:goal.window"); }),
            h("div", { className: "nf-error" })),
          h("div", { className: "nf-field", "data-field": "goal.value_field" },
            h("label", { for: "fe-goal-value" }, gettext("Value of a conversion (optional)")),
            h("input", { type: "text", id: "fe-goal-value", value: value.value_field ?? "", placeholder: "event.total",
              oninput: (e) => { value.value_field = e.target.value.trim() || null; this.changed("settings:goal.value_field"); } }),
            h("div", { className: "nf-error" })));
      }
    }
    parts.push(h("p", { className: "fe-words" }, isGoal
      ? gettext("Without a goal the statistics count the site-wide conversion events.")
      : gettext("A run stops with “exit criteria” when its customer gets a matching event after entering.")));
    return h("fieldset", { className: `fe-${name}` }, parts);
  }
}
