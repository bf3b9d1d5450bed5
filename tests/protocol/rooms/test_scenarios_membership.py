"""Named scenarios of membership: bans, kicks, joins, invitations and direct rooms.

Each test builds a room with :mod:`tests.protocol.rooms.builder`, resolves it with every
implementation under several causal arrival orders (the same answer every time, memo T2),
and asserts every rejected event with its reason and the state that matters. A is the
creator; M and N moderators (50); H an admin; U, X, Y plain users. The memo's table
(shared/notes/state-resolution.md §4) is cited as T1-T13; where it and the spec differ,
these tests follow spec/rooms.md and spec/state.md.
"""

from __future__ import annotations

import pytest

from protocol import MAX_SAFE_INTEGER
from tests.protocol.rooms.implementations import (
    IMPLEMENTATIONS,
    A,
    B,
    C,
    H,
    M,
    N,
    U,
    X,
    Y,
    assert_rejected,
    content_of,
    membership_of,
    resolve_everywhere,
    room,
)

pytestmark = pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))


def test_banned_member_cannot_rejoin_by_forking_history(impl: str) -> None:
    """T1: X forks from before the ban; an honest merge of the fork does not save it."""
    b = room([M, U, X, Y], {M: 50})
    m1 = b.say(A, "m1", label="m1")
    m2 = b.say(A, "m2", label="m2")
    b.say(A, "m3", label="m3", parents=[m2])
    ban = b.member(A, X, "ban", label="ban X")
    x1 = b.say(X, "from the past", parents=[m1], label="x1")
    b.say(U, "merging", parents=[x1, ban], label="y1")
    b.member(M, Y, "leave", label="M kicks Y")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {x1: "defeated"})
    assert membership_of(res, b, X) == "ban"
    assert membership_of(res, b, Y) == "leave"


def test_replayed_message_with_a_new_id_is_judged_like_a_new_event(impl: str) -> None:
    """T13: re-sending old content makes a new event; concurrent with the ban, it loses."""
    b = room([X])
    before = b.say(X, "hello", label="x0")
    ban = b.member(A, X, "ban", label="ban X")
    replay = b.say(X, "hello", parents=b.events[before]["prev_events"], label="replay")
    res = resolve_everywhere(impl, b)
    assert replay != before
    assert_rejected(res, b, {replay: "defeated"})
    assert res.state[("member", X)] == ban


def test_message_the_banner_had_seen_survives_the_ban(impl: str) -> None:
    """T3: a message that is an ancestor of the ban stays accepted."""
    b = room([X])
    b.say(X, "seen", label="x0")
    b.member(A, X, "ban", label="ban X")
    b.say(X, "after", label="x1")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {b.order[-1]: "not_joined"})


def test_message_concurrent_with_ban_is_defeated(impl: str) -> None:
    """T3, the documented cost: an honest message the banner never saw is rejected."""
    b = room([X])
    tip = b.order[-1]
    x0 = b.say(X, "unseen", parents=[tip], label="x0")
    b.member(A, X, "ban", parents=[tip], label="ban X")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {x0: "defeated"})


def test_unbanned_member_rejoins_while_old_fork_stays_rejected(impl: str) -> None:
    """T4: ban, unban, rejoin, x2 — all stand; X's pre-ban fork, delivered last, does not."""
    b = room([U, X])
    m0 = b.say(U, "m0", label="m0")
    b.member(A, X, "ban", label="ban X")
    b.member(A, X, "unban", label="unban X")
    b.join(X, label="rejoin")
    b.say(X, "back", label="x2")
    fork = b.say(X, "from before the ban", parents=[m0], label="fork")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {fork: "defeated"})
    assert membership_of(res, b, X) == "join"


def test_unban_in_invite_only_room_needs_a_new_invite_to_rejoin(impl: str) -> None:
    """`unban` counts as `leave` (rooms.md §3): rejoining an invite-only room needs an invite."""
    b = room([X], join_rule="invite")
    b.member(A, X, "ban", label="ban X")
    b.member(A, X, "unban", label="unban X")
    early = b.join(X, label="join uninvited")
    b.member(A, X, "invite", label="invite X")
    b.join(X, label="join invited")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {early: "not_invited"})
    assert membership_of(res, b, X) == "join"


def test_kick_concurrent_with_ban_leaves_target_banned(impl: str) -> None:
    """T8: the ban defeats the concurrent kick (a banned user is unbanned, not kicked)."""
    b = room([M, X], {M: 50})
    tip = b.order[-1]
    kick = b.member(M, X, "leave", parents=[tip], label="kick X")
    b.member(A, X, "ban", parents=[tip], label="ban X")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {kick: "defeated"})
    assert membership_of(res, b, X) == "ban"


def test_ban_beats_concurrent_kick_even_from_a_higher_rank(impl: str) -> None:
    """T8/A4: the restrictive action wins whatever the ranks: the creator's kick loses."""
    b = room([M, X], {M: 50})
    tip = b.order[-1]
    kick = b.member(A, X, "leave", parents=[tip], label="A kicks X")
    b.member(M, X, "ban", parents=[tip], label="M bans X")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {kick: "defeated"})
    assert membership_of(res, b, X) == "ban"


def test_moderators_ban_defeats_the_creators_concurrent_invite(impl: str) -> None:
    """SURPRISE (state.md §5 vs its one-sentence rule): defeat compares no ranks, so M's
    ban (rank 50) defeats the creator's concurrent invitation of X (`target_banned` had A
    seen it) — though the rule says only "someone with more authority" revokes."""
    b = room([M], {M: 50})
    tip = b.order[-1]
    b.member(M, X, "ban", parents=[tip], label="M bans X")
    invite = b.member(A, X, "invite", parents=[tip], label="A invites X")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {invite: "defeated"})
    assert membership_of(res, b, X) == "ban"


def test_leave_and_rejoin_concurrent_with_ban_are_defeated(impl: str) -> None:
    """T8: leaving and rejoining on a fork does not launder a concurrent ban."""
    b = room([X])
    tip = b.order[-1]
    leave = b.member(X, X, "leave", parents=[tip], label="X leaves")
    rejoin = b.join(X, parents=[leave], label="X rejoins")
    b.member(A, X, "ban", parents=[tip], label="ban X")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {leave: "defeated", rejoin: "defeated"})
    assert membership_of(res, b, X) == "ban"


def test_join_concurrent_with_switch_to_invite_only_is_defeated(impl: str) -> None:
    """T7: Y's public join loses to the concurrent switch; Y's message then has no join."""
    b = room()
    tip = b.order[-1]
    b.send(A, "join_rules", {"join_rule": "invite"}, state_key="", parents=[tip], label="switch")
    join = b.join(Y, parents=[tip], label="Y joins")
    y1 = b.say(Y, "hi", parents=[join], label="y1")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {join: "defeated", y1: "not_joined"})
    assert membership_of(res, b, Y) is None
    assert content_of(res, b, "join_rules") == {"join_rule": "invite"}


def test_join_seen_before_switch_to_invite_only_stands(impl: str) -> None:
    """T7 variant: a join that is an ancestor of the switch is not revoked by it."""
    b = room()
    b.join(Y, label="Y joins")
    b.send(A, "join_rules", {"join_rule": "invite"}, state_key="", label="switch")
    b.say(Y, "still here", label="y1")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {})
    assert membership_of(res, b, Y) == "join"


def test_invite_only_room_join_needs_invite(impl: str) -> None:
    """rooms.md §5 step 4: without an invitation the join is `not_invited`; with one, fine."""
    b = room(join_rule="invite")
    early = b.join(Y, label="Y joins uninvited")
    b.member(A, Y, "invite", label="invite Y")
    b.join(Y, label="Y accepts")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {early: "not_invited"})
    assert membership_of(res, b, Y) == "join"


def test_invitation_withdrawn_concurrently_defeats_the_accept(impl: str) -> None:
    """A withdrawal is a kick (a power event): it defeats the concurrent accept. Y's message
    after the accept rests on the accept, so it is settled after it (state.md §6 step 4):
    Y never joined, and the message fails on its own check."""
    b = room([M], {M: 50}, join_rule="invite")
    invite = b.member(A, Y, "invite", label="invite Y")
    b.member(M, Y, "leave", parents=[invite], label="withdraw")
    accept = b.join(Y, parents=[invite], label="Y accepts")
    y1 = b.say(Y, "hi", parents=[accept], label="y1")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {accept: "defeated", y1: "not_joined"})
    assert membership_of(res, b, Y) == "leave"


def test_peers_cannot_kick_each_other(impl: str) -> None:
    """T9: two level-100 admins kicking each other concurrently: both `target_not_lower`."""
    b = room([H, N], {H: 100, N: 100})
    tip = b.order[-1]
    k1 = b.member(H, N, "leave", parents=[tip], label="H kicks N")
    k2 = b.member(N, H, "leave", parents=[tip], label="N kicks H")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {k1: "target_not_lower", k2: "target_not_lower"})
    assert membership_of(res, b, H) == membership_of(res, b, N) == "join"


def test_creator_cannot_be_kicked_banned_or_demoted(impl: str) -> None:
    """The creator's level is infinite and immutable, even against the highest level."""
    b = room([H], {H: MAX_SAFE_INTEGER})
    kick = b.member(H, A, "leave", label="kick A")
    ban = b.member(H, A, "ban", label="ban A")
    demote = b.level(H, A, 0, label="demote A")
    b.level(A, H, 0, label="A demotes H")
    res = resolve_everywhere(impl, b)
    assert_rejected(
        res,
        b,
        {kick: "target_not_lower", ban: "target_not_lower", demote: "creator_immutable"},
    )
    assert membership_of(res, b, A) == "join"
    assert content_of(res, b, "power_levels", H) == {"level": 0}


def test_banned_admin_concurrent_actions_are_rejected(impl: str) -> None:
    """T9: the creator bans admin H, who concurrently posts, demotes A and kicks U."""
    b = room([H, U], {H: 100})
    tip = b.order[-1]
    b.member(A, H, "ban", parents=[tip], label="ban H")
    h1 = b.say(H, "h1", parents=[tip], label="h1")
    demote = b.level(H, A, 0, parents=[h1], label="H demotes A")
    kick = b.member(H, U, "leave", parents=[demote], label="H kicks U")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {h1: "defeated", demote: "creator_immutable", kick: "defeated"})
    assert membership_of(res, b, H) == "ban"
    assert membership_of(res, b, U) == "join"


@pytest.mark.parametrize("creator_kicks_later", [False, True])
def test_two_concurrent_kicks_of_one_user_keep_the_higher_rank_then_earlier(
    impl: str, creator_kicks_later: bool
) -> None:
    """Concurrent kicks defeat each other (`not_member`); rank first, then L order, decides.

    M's kick is one event earlier in L than the other kick; if the other is the creator's,
    rank wins over L order and M's kick is the one defeated.
    """
    b = room([M, N, U], {M: 50, N: 50})
    tip = b.order[-1]
    first = b.member(M, U, "leave", parents=[tip], label="M kicks U")
    pad = b.say(N, "pad", parents=[tip], label="pad")
    other = b.member(A if creator_kicks_later else N, U, "leave", parents=[pad], label="kick 2")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    loser = first if creator_kicks_later else other
    assert_rejected(res, b, {loser: "defeated"})
    assert membership_of(res, b, U) == "leave"


def test_direct_room_admits_two_members_only(impl: str) -> None:
    """A direct room: a third invitation is `room_full`; going public is `direct_room`."""
    b = room(join_rule=None, direct=True)
    b.member(A, B, "invite", label="invite B")
    b.join(B, label="B joins")
    by_a = b.member(A, C, "invite", label="A invites C")
    by_b = b.member(B, C, "invite", label="B invites C")
    public = b.send(A, "join_rules", {"join_rule": "public"}, state_key="", label="go public")
    b.send(A, "join_rules", {"join_rule": "invite"}, state_key="", label="stay private")
    join = b.join(C, label="C joins")
    res = resolve_everywhere(impl, b)
    assert_rejected(
        res,
        b,
        {by_a: "room_full", by_b: "room_full", public: "direct_room", join: "not_invited"},
    )


def test_direct_room_concurrent_invites_keep_two_members(impl: str) -> None:
    """In a direct room an invitation fills one of the two places, so it is a power event
    (state.md §5): two concurrent invitations defeat each other, the earlier in canonical
    order stands (same rank: both by the creator), the other invitee's join fails."""
    b = room(join_rule=None, direct=True)
    tip = b.order[-1]
    invite_b = b.member(A, B, "invite", parents=[tip], label="invite B")
    invite_c = b.member(A, C, "invite", parents=[tip], label="invite C")
    join_b = b.join(B, parents=[invite_b], label="B joins")
    join_c = b.join(C, parents=[invite_c], label="C joins")
    b.say(A, "how many of us?", label="merge")
    fourth = b.member(A, Y, "invite", label="invite Y")
    res = resolve_everywhere(impl, b)
    first, second = sorted([(invite_b, join_b), (invite_c, join_c)], key=lambda p: p[0])
    assert_rejected(res, b, {second[0]: "defeated", second[1]: "not_invited", fourth: "room_full"})
    assert res.verdicts[first[0]] is None
    assert res.verdicts[first[1]] is None
    joined = [u for u in (A, B, C) if membership_of(res, b, u) == "join"]
    assert len(joined) == 2


@pytest.mark.parametrize("removal", ["ban", "leave"])
def test_pre_ban_state_by_banned_user_survives(impl: str, removal: str) -> None:
    """T10: M's topic, set before M is banned (or kicked), stays; a later event that also
    names a pre-topic event as a parent resets nothing."""
    b = room([M, U], {M: 50})
    pre = b.say(U, "before the topic", label="pre")
    topic = b.send(M, "topic", {"topic": "by M"}, state_key="", label="topic")
    removed = b.member(A, M, removal, label="remove M")
    b.say(U, "later", parents=[pre, removed], label="later")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {})
    assert res.state[("topic", "")] == topic
    assert membership_of(res, b, M) == removal


def test_kicked_user_concurrent_rejoin_in_public_room_outlives_the_kick(impl: str) -> None:
    """SURPRISE (state.md §5): in a public room a kick defeats X's concurrent message but not
    X's concurrent join (X may join a public room), and the deeper join then holds the
    register: X ends joined, and X's post-merge message stands."""
    b = room([M, X], {M: 50})
    tip = b.order[-1]
    kick = b.member(M, X, "leave", parents=[tip], label="kick X")
    x0 = b.say(X, "x0", parents=[tip], label="x0")
    rejoin = b.join(X, parents=[x0], label="X rejoins (display name)")
    b.say(X, "still here", label="x after merge")
    res = resolve_everywhere(impl, b)
    assert b.events[rejoin]["depth"] > b.events[kick]["depth"]
    assert_rejected(res, b, {x0: "defeated"})
    assert membership_of(res, b, X) == "join"


def test_concurrent_ban_that_loses_its_register_still_defeats_the_rejoin(impl: str) -> None:
    """M's ban is concurrent with A's ban, unban and X's rejoin. It defeats the rejoin; X's
    message rests on the rejoin and fails on its own check; A's deeper unban holds the
    register (state.md §7, concurrent writes to one register): X ends unbanned but out."""
    b = room([M, X], {M: 50})
    tip = b.order[-1]
    b.member(M, X, "ban", parents=[tip], label="M bans X")
    ban = b.member(A, X, "ban", parents=[tip], label="A bans X")
    unban = b.member(A, X, "unban", parents=[ban], label="A unbans X")
    rejoin = b.join(X, parents=[unban], label="X rejoins")
    x2 = b.say(X, "back", parents=[rejoin], label="x2")
    b.say(A, "merge", label="merge")
    res = resolve_everywhere(impl, b)
    assert_rejected(res, b, {rejoin: "defeated", x2: "not_joined"})
    assert res.state[("member", X)] == unban
