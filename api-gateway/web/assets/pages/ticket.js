// A ticket: the booking's seats and status, its ticket code as a QR code (drawn by the gateway,
// GET /v1/bookings/{id}/qr, no outside service), and cancellation with the refund the policy
// gives shown before confirming (GET /v1/bookings/{id}/cancellation).

import { api } from '../api.js';
import { busy, facts, h, localDateTime, money, problemBox, replace, titled } from '../ui.js';

const STATUS = {
  pending_payment: 'Payment in progress',
  confirmed: 'Confirmed',
  failed: 'Payment failed',
  cancelling: 'Cancelling',
  cancelled: 'Cancelled',
};

export function statusText(status) {
  return STATUS[status] || status;
}

async function qr(booking) {
  const svg = await api(`/v1/bookings/${booking.booking_id}/qr`, { auth: true, headers: { Accept: 'image/svg+xml' } });
  const url = URL.createObjectURL(new Blob([svg], { type: 'image/svg+xml' }));
  const img = h('img', { class: 'qr', id: 'ticket-qr', src: url, width: '220', height: '220', alt: `QR code of ticket ${booking.ticket_code}` });
  img.addEventListener('load', () => URL.revokeObjectURL(url), { once: true });
  return img;
}

function cancelSection(booking, currency, redraw) {
  const box = h('section', { class: 'panel', id: 'cancel' });
  const ask = h('button', { type: 'button', class: 'secondary', id: 'cancel-start' }, 'Cancel booking…');
  const status = h('div', { 'aria-live': 'assertive' });
  ask.addEventListener('click', () => busy(ask, async () => {
    const quote = await api(`/v1/bookings/${booking.booking_id}/cancellation`, { auth: true });
    if (!quote.cancellable) {
      replace(status, h('p', { class: 'problem' }, quote.reason));
      return;
    }
    const confirm = h('button', { type: 'button', class: 'danger', id: 'cancel-confirm' }, 'Yes, cancel it');
    const keep = h('button', { type: 'button', class: 'secondary', onclick: () => replace(status) }, 'Keep my booking');
    replace(status,
      h('p', { id: 'refund-quote' }, `Cancelling now refunds ${money(quote.refund_minor, currency)}`,
        quote.refund_minor < booking.amount.amount_minor ? ` of the ${money(booking.amount.amount_minor, currency)} you paid.` : ' (the full amount).'),
      confirm, keep);
    confirm.addEventListener('click', () => busy(confirm, async () => {
      const done = await api(`/v1/bookings/${booking.booking_id}/cancel`, { method: 'POST', auth: true });
      redraw(done);
    }, status));
  }, status));
  replace(box, h('h2', {}, 'Cancel'), ask, status);
  return box;
}

export async function render(main, [bookingId]) {
  const booking = await api(`/v1/bookings/${bookingId}`, { auth: true });
  let show = null;
  try {
    show = await api(`/v1/shows/${booking.show_id}`);
  } catch {
    // The ticket still shows its seats and code without the show's details.
  }
  const currency = booking.amount.currency;
  async function draw(current) {
    const body = [
      h('h1', {}, show ? show.movie.title : `Booking ${current.booking_id}`),
      h('p', { class: `status status-${current.status}`, id: 'booking-status' }, statusText(current.status)),
    ];
    const details = facts([
      ['Theater', show && `${show.theater.name}, ${show.screen.name}`],
      ['When', show && localDateTime(show.show.starts_at_ms, show.theater.utc_offset_minutes)],
      ['Seats', current.seats.join(', ')],
      ['Paid', money(current.amount.amount_minor, currency)],
      ['Refunded', current.refund_minor !== null && current.refund_minor !== undefined && current.status !== 'confirmed'
        ? money(current.refund_minor, currency) : null],
      ['Booking', current.booking_id],
    ]);
    const ticket = h('section', { class: 'ticket' }, details);
    if (current.status === 'confirmed' && current.ticket_code) {
      const code = h('div', { class: 'code' }, h('p', { class: 'meta' }, 'Show this at the entrance'),
        h('p', { class: 'ticket-code', id: 'ticket-code' }, current.ticket_code));
      ticket.prepend(code);
      try {
        code.prepend(await qr(current));
      } catch (error) {
        code.append(problemBox(error));
      }
    }
    body.push(ticket);
    if (current.status === 'confirmed') body.push(cancelSection(current, currency, draw));
    if (current.status === 'cancelled') body.push(h('p', { class: 'info', id: 'cancelled-note' }, `Cancelled. ${money(current.refund_minor || 0, currency)} refunded to your card.`));
    body.push(h('p', {}, h('a', { href: '#/bookings' }, 'All my bookings')));
    replace(main, ...body);
    titled(main, 'Ticket');
  }
  await draw(booking);
}

