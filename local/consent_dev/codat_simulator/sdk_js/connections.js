// The Codat simulator's stand-in for Codat's Connections SDK (https://connections-sdk.codat.io), same shape:
//
//   import { CodatConnections } from "<this module>";
//   new CodatConnections({ target, props: { accessToken, onClose, onError } });
//
// It lists the company's connections (the access token says which company) and lets the customer disconnect one:
// unlinked in the simulator, so Codat's `connection.disconnected` webhook follows, as with Codat's component.

import { SOURCE_TYPES, asSdkError, call, el, errorView, initials, mount, segment } from "./common.js";

const STATUS = {
  Linked: "Connected",
  Unlinked: "Disconnected",
  Deauthorized: "Access lost at the provider",
  PendingAuth: "Not finished",
};

export class CodatConnections {
  constructor({ target, props = {} } = {}) {
    if (!(target instanceof HTMLElement)) throw new TypeError("CodatConnections needs a target element");
    this.props = props;
    this.ui = mount(target, "Codat · Connections (simulator)");
    this.ended = false;
    this.load();
  }

  api(method, path, body) {
    return call(this.props.accessToken, method, path, body);
  }

  async load(message) {
    this.ui.busy("Loading your connections…");
    try {
      this.session = this.session || (await this.api("GET", "session"));
      const path = `companies/${segment(this.session.companyId)}/connections`;
      this.connections = (await this.api("GET", path)).results;
      this.list(message);
    } catch (error) {
      this.fail(error);
    }
  }

  list(message) {
    const items = this.connections.map((connection) =>
      el("li", { className: "codat-connection", dataset: { connectionId: connection.id } },
        el("div", { style: "display: flex; gap: 0.75rem; align-items: center" },
          el("span", { className: "codat-logo", "aria-hidden": "true" }, initials(connection.platformName)),
          el("h3", {}, connection.platformName),
          el("span", { className: "codat-state" }, STATUS[connection.status] || connection.status)),
        el("p", { className: "codat-note" }, SOURCE_TYPES[connection.sourceType] || connection.sourceType),
        connection.status === "Linked"
          ? el("div", { className: "codat-actions" },
              el("button", { type: "button", onclick: (event) => this.confirm(connection, event.currentTarget) }, `Disconnect ${connection.platformName}`))
          : null),
    );
    this.ui.show(
      el("h2", {}, "Manage your connections"),
      message ? el("p", { role: "status", className: "codat-done" }, message) : null,
      el("p", {}, `The software ${this.session.companyName} shares with your bank through Codat.`),
      items.length ? el("ul", {}, items) : el("p", {}, "Nothing is connected."),
      el("div", { className: "codat-actions" }, el("button", { type: "button", onclick: () => this.close() }, "Close")),
    );
  }

  confirm(connection, button) {
    const actions = button.closest(".codat-actions");
    const keep = el("button", { type: "button", onclick: () => this.list() }, "Keep connected");
    actions.replaceWith(
      el("div", { className: "codat-actions", role: "group", "aria-label": `Disconnect ${connection.platformName}?` },
        el("p", { style: "flex-basis: 100%" }, `Disconnect ${connection.platformName}? Your bank will no longer receive its data.`),
        el("button", { type: "button", className: "codat-danger", onclick: () => this.disconnect(connection) }, "Disconnect"),
        keep),
    );
    keep.focus();
  }

  async disconnect(connection) {
    this.ui.busy(`Disconnecting ${connection.platformName}…`);
    try {
      const path = `companies/${segment(this.session.companyId)}/connections/${segment(connection.id)}`;
      await this.api("PATCH", path, { status: "Unlinked" });
      await this.load(`${connection.platformName} was disconnected.`);
    } catch (error) {
      this.fail(error);
    }
  }

  close() {
    if (this.ended) return;
    this.ended = true;
    this.props.onClose?.();
  }

  fail(error) {
    const failure = asSdkError(error);
    this.ui.show(errorView(failure, "Close", () => this.close()));
    this.props.onError?.(failure.details);
  }
}
