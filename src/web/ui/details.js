// The details pane of one task: its fields, links to the same task on the other faces,
// and the actions the server would allow.

import { setText, make, textOf } from "./dom.js";
import { formatTime, isCompleted, parseXapiDate, percent } from "./format.js";
import { requests } from "./model.js";

export class Details {
  /** `root` holds the elements of index.html's details section; `on.cancel()`, `on.destroy()`. */
  constructor(root, on) {
    this.root = root;
    this.title = root.querySelector("#details-title");
    this.fields = root.querySelector("#details-fields");
    this.links = root.querySelector("#details-links");
    this.cancel = root.querySelector("#action-cancel");
    this.destroy = root.querySelector("#action-destroy");
    this.error = root.querySelector("#action-error");
    this.close = root.querySelector("#details-close");
    this.cancel.addEventListener("click", () => on.cancel());
    this.destroy.addEventListener("click", () => on.destroy());
    this.ref = null;
  }

  /** Shows a task (or that it is gone); `actions` = {cancel, destroy} to offer. */
  show(ref, task, actions, ctx) {
    if (ref !== this.ref) {
      this.ref = ref;
      this.say("");
    }
    this.root.hidden = false;
    if (!task) {
      setText(this.title, "Task no longer exists");
      this.fields.replaceChildren();
      this.links.replaceChildren();
      this.#offer({ cancel: false, destroy: false });
      return;
    }
    setText(this.title, task.name_label || "(no name)");
    const rows = [
      ["Description", task.name_description],
      ["UUID", task.uuid],
      ["Status", [task.status, ...requests(task)].join(", ")],
      ["Progress", `${percent(task.progress)} %`],
      ["Created", formatTime(parseXapiDate(task.created))],
      ["Finished", isCompleted(task.status) ? formatTime(parseXapiDate(task.finished)) : "not yet"],
      ["Owner", ctx.own.has(ref) ? "this session" : "another session (XAPI does not say whose)"],
      ["Subtask of", ctx.model.tasks.get(task.subtask_of)?.name_label ?? "—"],
      ["Subtasks", String(ctx.model.childrenOf(ref).size)],
      ["Type", task.type],
      ["Result", task.result],
      ["Error info", (task.error_info ?? []).join("\n")],
    ];
    const items = [];
    for (const [k, v] of rows) items.push(textOf("dt", k), textOf("dd", v === "" || v === undefined ? "—" : v));
    const oc = Object.entries(task.other_config ?? {});
    const dd = make("dd");
    if (oc.length === 0) dd.textContent = "—";
    else {
      const inner = make("dl", "kv");
      for (const [k, v] of oc) inner.append(textOf("dt", k), textOf("dd", v));
      dd.append(inner);
    }
    this.fields.replaceChildren(...items, textOf("dt", "other_config"), dd);
    const uuid = encodeURIComponent(task.uuid);
    const link = (text, href) => {
      const a = textOf("a", text);
      a.setAttribute("href", href);
      const li = make("li");
      li.append(a);
      return li;
    };
    const links = [link("Redfish task", `/redfish/v1/TaskService/Tasks/${uuid}`)];
    // The monitor of a cancelled task is gone (Redfish TaskService v1.3).
    if (task.status !== "cancelled") {
      links.push(link("Redfish task monitor", `/redfish/v1/TaskService/TaskMonitors/${uuid}`));
    }
    links.push(link("XClarity job", `/tasks/${uuid}`));
    this.links.replaceChildren(...links);
    this.#offer(actions);
  }

  // Shows the allowed actions. A button that goes away while it has the focus (Cancel
  // once the task is cancelled) hands the focus on instead of dropping it to the page.
  #offer(actions) {
    const had = document.activeElement;
    this.cancel.hidden = !actions.cancel;
    this.destroy.hidden = !actions.destroy;
    if ((had === this.cancel || had === this.destroy) && had.hidden) {
      (actions.destroy ? this.destroy : this.close).focus();
    }
  }

  hide() {
    this.ref = null;
    this.root.hidden = true;
    this.say("");
  }

  /** The outcome of an action (XAPI's error when the server refused). */
  say(text) {
    setText(this.error, text);
  }
}
