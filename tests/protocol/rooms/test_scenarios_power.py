"""Named scenarios of power: demotions, promotions, thresholds and rank.

As in test_scenarios_membership.py: every implementation, several causal arrival orders,
exact verdicts and reasons, and the state that matters. A is the creator (infinite rank);
M, N moderators (50); H an admin; U, Y plain users. Tests marked SURPRISE or SPEC HOLE
pin what the spec yields today where that looks undesirable; the report explains each.
"""

from __future__ import annotations

import pytest

from tests.protocol.rooms.implementations import (
    IMPLEMENTATIONS,
    A,
    H,
    M,
    N,
    U,
    Y,
    assert_rejected,
    content_of,
    level_of,
    membership_of,
    resolve_everywhere,
    room,
)

pytestmark = pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))


def test_demoted_moderators_backdated_kick_does_not_remove_victims_messages(impl: str) -> None:
    """T5/A7: A demotes M; M, forked from before, kicks U. The creator's demotion is
    applied first (higher rank), so the kick falls and U's messages u1, u2 — concurrent
    with the kick — survive."""
    b = room([M, U], {M: 50})
    tip = b.order[-1]
    u1 = b.say(U, "u1", parents=[tip], label="u1")
    demote = b.level(A, M, 0, parents=[u1], label="demote M")
    b.say(U, "u2", parents=[demote], label="u2")
    kick = b.member(M, U, "leave", parents=[tip], label="M kicks U")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {kick: "defeated"})
    assert membership_of(res, b, U) == "join"
    assert level_of(res, b, M) == 0


def test_promotion_by_concurrently_demoted_moderator_falls_with_its_consequences(
    impl: str,
) -> None:
    """T6: A demotes M while M promotes N; N then bans Y. The promotion is defeated, and
    N's ban — no longer backed by any level — fails its own check (`insufficient_power`)."""
    b = room([M, N, Y], {M: 50})
    tip = b.order[-1]
    b.level(A, M, 0, parents=[tip], label="demote M")
    promote = b.level(M, N, 50, parents=[tip], label="M promotes N")
    ban = b.member(N, Y, "ban", parents=[promote], label="N bans Y")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {promote: "defeated", ban: "insufficient_power"})
    assert membership_of(res, b, Y) == "join"
    assert level_of(res, b, N) is None
    assert level_of(res, b, M) == 0


def test_mutual_demotion_after_forked_promotions_resolves_the_same_in_every_order(
    impl: str,
) -> None:
    """T12, one creator: on one branch A promotes N and N demotes M; on the other A promotes
    M and M demotes N. Each promotion defeats the other branch's demotion (rank infinity
    goes first), so both demotions fall and M = N = 50, under every causal arrival order."""
    b = room([M, N], {M: 25, N: 25})
    tip = b.order[-1]
    promote_n = b.level(A, N, 50, parents=[tip], label="promote N")
    demote_m = b.level(N, M, 0, parents=[promote_n], label="N demotes M")
    promote_m = b.level(A, M, 50, parents=[tip], label="promote M")
    demote_n = b.level(M, N, 0, parents=[promote_m], label="M demotes N")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b, every_order=True)
    assert_rejected(res, b, {demote_m: "defeated", demote_n: "defeated"})
    assert (level_of(res, b, M), level_of(res, b, N)) == (50, 50)


def test_level_above_own_is_rejected(impl: str) -> None:
    """No one grants a level, or moves a threshold, above their own (rooms.md §5 steps 7, 9)."""
    b = room([M, U], {M: 50})
    above = b.level(M, U, 60, label="U to 60")
    b.level(M, U, 50, label="U to 50")
    threshold = b.send(M, "power_levels", {"ban": 60}, state_key="", label="ban to 60")
    peer = b.member(M, U, "leave", label="kick U")
    res = resolve_everywhere(impl, b)
    assert_rejected(
        res,
        b,
        {above: "level_above_own", threshold: "level_above_own", peer: "target_not_lower"},
    )
    assert level_of(res, b, U) == 50
    assert content_of(res, b, "power_levels") is None


def test_concurrent_level_changes_for_two_users_both_apply(impl: str) -> None:
    """T11: per-user registers: A sets U's level while H sets Y's; both changes hold."""
    b = room([H, U, Y], {H: 75})
    tip = b.order[-1]
    set_u = b.level(A, U, 10, parents=[tip], label="U to 10")
    set_y = b.level(H, Y, 20, parents=[tip], label="Y to 20")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {})
    assert res.state[("power_levels", U)] == set_u
    assert res.state[("power_levels", Y)] == set_y


def test_concurrent_threshold_raise_defeats_a_kick(impl: str) -> None:
    """A raises `kick` to 60 while M (50) kicks U: the kick is defeated, U stays."""
    b = room([M, U], {M: 50})
    tip = b.order[-1]
    b.send(A, "power_levels", {"kick": 60}, state_key="", parents=[tip], label="kick to 60")
    kick = b.member(M, U, "leave", parents=[tip], label="M kicks U")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {kick: "defeated"})
    assert membership_of(res, b, U) == "join"


def test_concurrent_full_threshold_write_cannot_revert_a_higher_ranked_one(impl: str) -> None:
    """`(power_levels, "")` is one register: M's concurrent write (which leaves `ban` at its
    default) would revert A's `ban: 100` if it won the register; A's write defeats it."""
    b = room([M], {M: 50})
    tip = b.order[-1]
    raise_ban = b.send(A, "power_levels", {"ban": 100}, state_key="", parents=[tip], label="A")
    pad = b.say(M, "pad", parents=[tip], label="pad")
    write = b.send(M, "power_levels", {"kick": 40}, state_key="", parents=[pad], label="M")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {write: "defeated"})
    assert res.state[("power_levels", "")] == raise_ban


def test_backdated_kick_by_a_current_moderator_retracts_the_victims_messages(impl: str) -> None:
    """SURPRISE (state.md §5, §7 "the documented cost"): M, still a moderator, forks from
    older history and kicks U there. Every message U sent since the fork point is
    concurrent with the kick and is defeated: a moderator can retract any lower user's
    recent history by choosing the fork point."""
    b = room([M, U], {M: 50})
    tip = b.order[-1]
    u1 = b.say(U, "u1", parents=[tip], label="u1")
    u2 = b.say(U, "u2", parents=[u1], label="u2")
    u3 = b.say(U, "u3", parents=[u2], label="u3")
    b.member(M, U, "leave", parents=[tip], label="backdated kick")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {u1: "defeated", u2: "defeated", u3: "defeated"})
    assert membership_of(res, b, U) == "leave"


def test_changing_users_default_acts_on_the_users_at_the_default(impl: str) -> None:
    """rooms.md §5 step 7: N (50) may not demote M (50) directly (`target_not_lower`), and
    may not lower `users_default` from 50 either: that acts on every user at the default,
    M included, who is not below N. M keeps 50 and may kick U."""
    b = room([M, N, U], {N: 50, U: 0}, power={"users_default": 50})
    direct = b.level(N, M, 0, label="N demotes M")
    indirect = b.send(N, "power_levels", {"users_default": 0}, state_key="", label="default 0")
    kick = b.member(M, U, "leave", label="M kicks U")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {direct: "target_not_lower", indirect: "target_not_lower"})
    assert res.verdicts[kick] is None


@pytest.mark.parametrize("ban_first", [True, False])
def test_a_defeated_ban_excludes_nothing_whatever_the_order(impl: str, ban_first: bool) -> None:
    """state.md §6 step 4: A demotes M while M bans U and U posts u1, all concurrently. The
    ban's defeat of u1 rests on the ban, which is itself being defeated, so it waits: the
    demotion removes the ban first, and u1 stands — whichever comes first in L."""
    b = room([M, U], {M: 50})
    tip = b.order[-1]
    u1 = b.say(U, "u1", parents=[tip], label="u1")
    m_pad = tip if ban_first else b.say(M, "m", parents=[tip], label="m pad")
    ban = b.member(M, U, "ban", parents=[m_pad], label="M bans U")
    a_pad = b.say(A, "a", parents=[tip], label="a pad") if ban_first else tip
    b.level(A, M, 0, parents=[a_pad], label="A demotes M")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {ban: "defeated"})
    assert res.verdicts[u1] is None
    assert membership_of(res, b, U) == "join"
