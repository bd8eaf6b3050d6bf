"""The reservation book ranks holders as their queue does now: a holder and a gang compared with it
are both placed by their aged queue priority, not by what the holder had when it was held."""

from __future__ import annotations

from aisched.framework.reservations import Reservation, ReservationBook, order_of
from aisched.framework.types import Gang
from tests.support.core import pod


def _gang(name: str, created: float) -> Gang:
    return Gang.of(pod(name, gpus=8, created=created))


def _held(gang: Gang) -> Reservation:
    return Reservation(
        gang=gang.key, queue="ml", order=order_of(gang), nodes=("n0",), start=None, end=None, since=0.0
    )


def test_holders_are_ranked_by_their_queue_priority_now() -> None:
    early, late = _gang("early", 1.0), _gang("late", 2.0)
    book = ReservationBook()
    book.hold(_held(early))  # held at priority 0
    aged = {early.key: 2, late.key: 2}  # both have since waited long enough to age by 2
    book.rank_by(aged.get)
    (holder,) = book
    assert book.order_now(holder) < book.order_for(late), "the earlier gang is still ahead"
    assert holder.blocks(book.order_for(late), 0.0, None, holder=book.order_now(holder))
    assert not holder.blocks(book.order_for(late), 0.0, None), "by the order it was held at, it would not"
    assert book.ahead_of(book.order_for(late)) == [holder]
    assert book.ahead_of((-3, 9.0, 9, "ml/gang:higher")) == [], "a gang aged higher still is ahead of it"


def test_a_gang_its_queue_does_not_know_keeps_the_order_it_was_held_at() -> None:
    gang = _gang("lone", 1.0)
    book = ReservationBook()
    book.hold(_held(gang))
    book.rank_by(lambda _: None)
    (holder,) = book
    assert book.order_now(holder) == holder.order
