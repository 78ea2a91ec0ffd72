/*
 * The input tap (px_conn_set_tap in px/engine.h): received bytes for a
 * handler that reads them while it runs released on another thread, where
 * on_data could not be called. What the tap does not take is held in the
 * connection's input queue, and reading stops, until px_conn_tap_resume; the
 * bytes a tap took of a held segment are skipped through its off field.
 */
#include <errno.h>

#include "internal.h"

void px__tap_end(px_conn_t *c, int err)
{
    const px_conn_tap_t *tap = c->tap;

    if (tap == NULL || (c->state & PX_CONN_TAP_ENDED))
        return;
    c->state |= PX_CONN_TAP_ENDED;
    tap->on_end(c, err, tap->arg);
}

void px__tap_deliver(px_conn_t *c, const char *data, size_t len)
{
    const px_conn_tap_t *tap = c->tap;
    size_t took = tap->on_data(c, data, len, tap->arg);

    if (took >= len)
        return;
    c->state |= PX_CONN_TAP_FULL;
    if (px__conn_hold_input(c, data + took, len - took) < 0) {
        px__conn_kill(c, -ENOMEM);
        return;
    }
    px__conn_stop_recv(c); /* until the reader makes room */
}

void px__tap_feed(px_conn_t *c)
{
    while (c->tap != NULL && c->in_head != NULL && !px__conn_paused(c) &&
           !(c->state & (PX_CONN_TAP_FULL | PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))) {
        px_seg_t *s = c->in_head;
        size_t took = c->tap->on_data(c, s->data + s->off, s->len - s->off, c->tap->arg);

        s->off += (uint32_t)PX_MIN(took, (size_t)(s->len - s->off));
        if (s->off < s->len) {
            c->state |= PX_CONN_TAP_FULL;
            break;
        }
        c->in_head = s->next;
        if (c->in_head == NULL)
            c->in_tail = NULL;
        px_pool_free(&c->w->chunk_pool, s);
    }
    if (c->tap == NULL || c->in_head != NULL || (c->state & PX_CONN_DEAD))
        return;
    /* All held input taken: an end that came behind it, else read on. */
    if (c->state & PX_CONN_END_HELD)
        px__tap_end(c, c->held_end);
    else
        px__conn_arm_recv(c);
}

void px_conn_set_tap(px_conn_t *c, const px_conn_tap_t *tap)
{
    c->tap = tap;
    c->state &= ~(PX_CONN_TAP_FULL | PX_CONN_TAP_ENDED);
    if (tap == NULL) {
        /* What was held for the tap goes to on_data once no handler runs. */
        if (c->in_head != NULL && !(c->state & PX_CONN_DEAD)) {
            c->state |= PX_CONN_DELIVER;
            px__worker_mark_dirty(c->w, c);
        }
        return;
    }
    if (c->state & (PX_CONN_CLOSING | PX_CONN_SHUT | PX_CONN_DEAD))
        px__tap_end(c, -ECONNRESET);
    else if (c->in_head == NULL && (c->state & (PX_CONN_EOF | PX_CONN_END_HELD)))
        px__tap_end(c, (c->state & PX_CONN_END_HELD) ? c->held_end : 0);
    else if (c->in_head != NULL)
        px__tap_feed(c);
}

void px_conn_tap_resume(px_conn_t *c)
{
    if (c->tap == NULL)
        return;
    c->state &= ~PX_CONN_TAP_FULL;
    px__tap_feed(c);
}
