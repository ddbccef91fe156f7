// The Codat simulator's stand-in for Codat's Link SDK (https://link-sdk.codat.io), with the same shape:
//
//   import { CodatLink } from "<this module>";
//   new CodatLink({ target, props: { companyId, accessToken, onConnection, onFinish, onClose, onError } });
//
// It lists the enabled integrations, asks the customer to authorize the one she picks, and authorizes it in the
// simulator, through the same step as the hosted Link page, so Codat's webhooks follow as they do there.
// Callbacks: onConnection({ connectionId }) once a connection is authorized, onFinish() when she is done,
// onClose() when she leaves without finishing, onError({ correlationId, message, errorCode, userRecoverable }).
// A callback is a hint for the page, never evidence of consent: Codat's webhooks are.

import { SOURCE_TYPES, SdkError, asSdkError, call, el, errorView, initials, mount, segment } from "./common.js";

export class CodatLink {
  constructor({ target, props = {} } = {}) {
    if (!(target instanceof HTMLElement)) throw new TypeError("CodatLink needs a target element");
    this.props = props;
    this.ui = mount(target, "Codat · Link (simulator)");
    this.connected = []; // connections authorized in this session
    this.ended = false;
    this.load();
  }

  get path() {
    return `companies/${segment(this.props.companyId)}`;
  }

  api(method, path, body) {
    return call(this.props.accessToken, method, path, body);
  }

  async load() {
    this.ui.busy("Opening Codat…");
    try {
      if (!this.props.companyId || !this.props.accessToken) {
        throw new SdkError({ message: "CodatLink needs a companyId and an accessToken.", userRecoverable: false });
      }
      // The token is checked first (for this company), then what the company may connect.
      this.company = await this.api("GET", this.path);
      this.integrations = (await this.api("GET", `${this.path}/integrations`)).results;
      this.list();
    } catch (error) {
      this.fail(error);
    }
  }

  list() {
    const groups = new Map();
    for (const integration of this.integrations) {
      if (!groups.has(integration.sourceType)) groups.set(integration.sourceType, []);
      groups.get(integration.sourceType).push(integration);
    }
    this.ui.show(
      el("h2", {}, "Connect your software"),
      el("p", {}, `Choose the software ${this.company.companyName} uses. Codat reads its data and shares it with your bank.`),
      [...groups].map(([sourceType, items]) => [
        el("h3", {}, SOURCE_TYPES[sourceType] || sourceType),
        el("ul", {}, items.map((integration) => el("li", {}, this.option(integration)))),
      ]),
      el("div", { className: "codat-actions" }, el("button", { type: "button", onclick: () => this.close() }, "Close")),
    );
  }

  option(integration) {
    const state = integration.connected ? "Connected" : integration.isBeta ? "Beta" : "";
    return el(
      "button",
      {
        type: "button",
        className: "codat-option",
        disabled: integration.connected,
        dataset: { platformKey: integration.key },
        onclick: () => this.consent(integration),
      },
      el("span", { className: "codat-logo", "aria-hidden": "true" }, initials(integration.name)),
      el("span", {}, integration.name),
      state ? el("span", { className: "codat-state" }, state) : null,
    );
  }

  consent(integration) {
    this.ui.show(
      el("h2", {}, `Connect ${integration.name}`),
      el("p", {}, `${this.company.companyName} lets your bank read its ${integration.name} data through Codat. You can disconnect it at any time.`),
      el("dl", {},
        el("dt", {}, "Company"), el("dd", {}, this.company.companyName),
        el("dt", {}, "Software"), el("dd", {}, integration.name),
        el("dt", {}, "Shared with"), el("dd", {}, "Your bank, through Codat")),
      el("div", { className: "codat-actions" },
        el("button", { type: "button", className: "codat-primary", onclick: () => this.authorize(integration) }, "Authorize"),
        el("button", { type: "button", onclick: () => this.list() }, "Back"),
        el("button", { type: "button", onclick: () => this.close() }, "Cancel")),
      el("p", { className: "codat-note" }, "A stand-in for Codat's Link: no credentials are asked for, no data leaves this machine."),
    );
  }

  async authorize(integration) {
    this.ui.busy(`Connecting ${integration.name}…`);
    try {
      // Codat makes the connection when the customer confirms, and she authorizes it at the platform.
      const connection = await this.api("POST", `${this.path}/connections`, { platformKey: integration.key });
      await this.api("POST", `${this.path}/connections/${segment(connection.id)}/authorize`);
      this.connected.push(connection.id);
      integration.connected = true;
      this.props.onConnection?.({ connectionId: connection.id });
      this.done(integration);
    } catch (error) {
      this.fail(error);
    }
  }

  done(integration) {
    this.ui.show(
      el("h2", {}, `${integration.name} is connected`),
      el("p", {}, "Codat is reading your data now. You can connect more software, or finish."),
      el("div", { className: "codat-actions" },
        el("button", { type: "button", className: "codat-primary", onclick: () => this.finish() }, "Finish"),
        el("button", { type: "button", onclick: () => this.list() }, "Connect more software")),
    );
  }

  finish() {
    if (this.ended) return;
    this.ended = true;
    this.props.onFinish?.();
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
