// The points step: bounded slider and number, live summary from the quote, redeem, card
// payment of the remainder (Stripe.js tokenizes the card; the server confirms with it), and
// the saga's outcome, polled until it ends.
(function () {
  "use strict";
  const root = document.getElementById("checkout");
  const booking = root.dataset.booking;
  const amount = parseInt(root.dataset.amount, 10);
  const max = parseInt(root.dataset.max, 10);
  const base = "/checkout/" + encodeURIComponent(booking);
  const range = document.getElementById("points-range");
  const number = document.getElementById("points-number");
  const outcome = document.getElementById("outcome");
  const fmt = (n) => n.toLocaleString("en-US");
  const stripe = Stripe(root.dataset.key);
  let card = null;
  let timer = null;

  async function call(method, path, body) {
    const response = await fetch(base + path, {
      method: method,
      headers: {"Content-Type": "application/json", "X-CSRF-Token": root.dataset.csrf},
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    return {ok: response.ok, status: response.status, data: data};
  }

  function clamp(value) {
    const n = Math.floor(Number(value));
    if (!Number.isFinite(n) || n < 0) return 0;
    return Math.min(n, max);
  }

  async function requote(points) {
    const answer = await call("POST", "/quote", {amount: amount, points: points});
    if (!answer.ok) { outcome.textContent = answer.data.message || "the quote failed"; return; }
    if (clamp(number.value) !== points) return;  // a newer value is on its way
    const q = answer.data;
    document.querySelector("[data-testid=deduction]").textContent = "-" + fmt(q.discount_minor) + " " + q.currency;
    document.querySelector("[data-testid=final]").textContent = fmt(q.amount_to_charge_minor) + " " + q.currency;
  }

  function setPoints(value) {
    const points = clamp(value);
    range.value = String(points);
    number.value = String(points);
    clearTimeout(timer);
    timer = setTimeout(() => requote(points), 120);
  }
  range.addEventListener("input", () => setPoints(range.value));
  number.addEventListener("change", () => setPoints(number.value));
  number.addEventListener("input", () => { if (number.value !== "") setPoints(number.value); });

  function show(state) {
    outcome.textContent = state.sentence;
    return ["captured", "released", "rejected"].includes(state.status);
  }

  async function follow() {
    for (let i = 0; i < 240; i++) {
      const answer = await call("GET", "/status");
      if (answer.ok && show(answer.data)) {
        document.getElementById("pay-section").querySelectorAll("button").forEach((b) => b.disabled = true);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  document.getElementById("apply").addEventListener("click", async (event) => {
    const points = clamp(number.value);
    if (points === 0) { outcome.textContent = "No points applied: pay the whole order by card at the storefront."; return; }
    event.target.disabled = true;
    range.disabled = number.disabled = true;
    const answer = await call("POST", "/redeem", {amount: amount, points: points});
    if (!answer.ok) {
      outcome.textContent = answer.data.message || "the points could not be applied";
      event.target.disabled = range.disabled = number.disabled = false;
      return;
    }
    const hold = answer.data;
    document.getElementById("pay-section").hidden = false;
    outcome.textContent = fmt(hold.points_held) + " points held.";
    if (hold.amount_to_charge_minor === 0) {
      document.getElementById("pay-what").textContent = "Your points cover the whole order: nothing to pay by card.";
      document.getElementById("card-fieldset").hidden = true;
      document.getElementById("pay").hidden = true;
      document.getElementById("confirm").hidden = false;
    } else {
      document.getElementById("pay-what").textContent = "To pay by card: " + fmt(hold.amount_to_charge_minor) + " " + hold.currency;
      card = stripe.elements().create("card");
      card.mount("#card");
    }
  });

  document.getElementById("pay").addEventListener("click", async (event) => {
    event.target.disabled = true;
    const result = await stripe.createToken(card);
    if (result.error) {
      outcome.textContent = "Card refused: " + (result.error.message || "check the card's details");
      event.target.disabled = false;
      return;
    }
    const answer = await call("POST", "/pay", {token: result.token.id});
    if (answer.status === 402) {
      outcome.textContent = "Card declined (" + answer.data.declined + "). Your points are still held: try another card.";
      event.target.disabled = false;
      return;
    }
    if (!answer.ok) { outcome.textContent = answer.data.message || "the payment failed"; event.target.disabled = false; return; }
    outcome.textContent = "Payment sent: waiting for confirmation ...";
    follow();
  });

  document.getElementById("confirm").addEventListener("click", async (event) => {
    event.target.disabled = true;
    const answer = await call("POST", "/confirm");
    if (answer.ok) { show(answer.data); follow(); } else { outcome.textContent = answer.data.message; }
  });

  document.getElementById("release").addEventListener("click", async (event) => {
    event.target.disabled = true;
    const answer = await call("POST", "/release");
    if (answer.ok) { show(answer.data); follow(); } else { outcome.textContent = answer.data.message; }
  });
})();
