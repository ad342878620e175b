//! Users, login codes, rate events and login sessions.

use athena_domain::{Role, SessionId, UserId};

use super::{assert_not_found, email, join_all, now, secs, user, BoxFuture};
use crate::{LoginCode, NewSession, NewUser, Store, StoreError};

pub async fn users(s: &dyn Store) {
    let t = now();
    let mail = email("ann");
    let id = UserId::new();
    let u = s
        .create_user(NewUser { id: id.clone(), email: mail.clone(), display_name: "Ann".into(), role: Role::User, now: t })
        .await
        .expect("create user");
    assert_eq!(u.id, id);
    assert_eq!(u.email, mail);
    assert_eq!(u.display_name, "Ann");
    assert_eq!(u.language, "zh-CN");
    assert_eq!(u.role, Role::User);
    assert_eq!((u.created_at, u.updated_at), (t, t));
    assert_eq!(s.user(&id).await.expect("user"), u);
    assert_eq!(s.user_by_email(&mail).await.expect("by email"), Some(u.clone()));
    assert_eq!(s.user_by_email(&email("nobody")).await.expect("by email"), None);

    let dup =
        s.create_user(NewUser { id: UserId::new(), email: mail.clone(), display_name: "Other".into(), role: Role::User, now: t }).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "duplicate email: {dup:?}");

    let admin = s.set_user_role(&id, Role::Admin).await.expect("set role");
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(s.user(&id).await.expect("user").role, Role::Admin);
    assert_not_found(s.user(&UserId::new()).await, "missing user");
    assert_not_found(s.set_user_role(&UserId::new(), Role::Admin).await, "role of missing user");
}

pub async fn login_codes(s: &dyn Store) {
    let t = now();
    let mail = email("code");
    assert_eq!(s.login_code(&mail).await.expect("code"), None);
    assert_eq!(s.add_login_code_attempt(&mail).await.expect("attempt"), 0, "no code, no attempts");

    let code = LoginCode { email: mail.clone(), code_hash: "h1".into(), attempts: 0, expires_at: t + secs(600), created_at: t };
    s.put_login_code(code.clone()).await.expect("put code");
    assert_eq!(s.login_code(&mail).await.expect("code"), Some(code));
    assert_eq!(s.add_login_code_attempt(&mail).await.expect("attempt"), 1);
    assert_eq!(s.add_login_code_attempt(&mail).await.expect("attempt"), 2);
    assert_eq!(s.login_code(&mail).await.expect("code").map(|c| c.attempts), Some(2));

    // A new code replaces the old one, attempts included.
    let second =
        LoginCode { email: mail.clone(), code_hash: "h2".into(), attempts: 0, expires_at: t + secs(700), created_at: t + secs(60) };
    s.put_login_code(second.clone()).await.expect("replace code");
    assert_eq!(s.login_code(&mail).await.expect("code"), Some(second));

    s.delete_login_code(&mail).await.expect("delete code");
    assert_eq!(s.login_code(&mail).await.expect("code"), None);
    s.delete_login_code(&mail).await.expect("deleting twice is fine");
}

pub async fn rate_events(s: &dyn Store) {
    let t = now();
    let key = format!("k-{}", uuid::Uuid::new_v4());
    for ago in [120, 30, 10] {
        s.record_rate_event("send_code", &key, t - secs(ago)).await.expect("record");
    }
    s.record_rate_event("other_scope", &key, t).await.expect("record");
    assert_eq!(s.count_rate_events("send_code", &key, t - secs(60)).await.expect("count"), 2);
    assert_eq!(s.count_rate_events("send_code", &key, t - secs(200)).await.expect("count"), 3);
    assert_eq!(s.count_rate_events("send_code", &key, t - secs(10)).await.expect("count"), 1, "window start is inclusive");
    assert_eq!(s.count_rate_events("send_code", "someone-else", t - secs(200)).await.expect("count"), 0);
    assert_eq!(s.count_rate_events("other_scope", &key, t - secs(200)).await.expect("count"), 1);

    let pruned = s.prune_rate_events(t - secs(60)).await.expect("prune");
    assert!(pruned >= 1, "pruned {pruned}");
    assert_eq!(s.count_rate_events("send_code", &key, t - secs(200)).await.expect("count"), 2);
}

fn new_session(user: &UserId, hash: &str, at: chrono::DateTime<chrono::Utc>, ttl: i64) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id: user.clone(),
        user_agent: "test-agent/1.0".into(),
        refresh_hash: hash.to_string(),
        refresh_expires_at: at + secs(ttl),
        now: at,
    }
}

pub async fn sessions(s: &dyn Store) {
    let t = now();
    let ann = user(s, "sess").await;
    let bob = user(s, "sess-other").await;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let h = |n: &str| format!("{tag}-{n}");

    let s1 = s.create_session(new_session(&ann.id, &h("r1"), t, 30 * 86400)).await.expect("session 1");
    assert_eq!(s1.user_id, ann.id);
    assert_eq!(s1.user_agent, "test-agent/1.0");
    assert_eq!((s1.created_at, s1.last_used_at, s1.revoked_at), (t, t, None));
    let s2 = s.create_session(new_session(&ann.id, &h("r2"), t + secs(1), 30 * 86400)).await.expect("session 2");
    let short = s.create_session(new_session(&ann.id, &h("r3"), t + secs(2), 5)).await.expect("short session");
    assert_eq!(s.session(&s1.id).await.expect("session"), s1);
    assert_eq!(s.session_by_refresh_hash(&h("r1")).await.expect("by hash"), Some(s1.clone()));
    assert_eq!(s.session_by_refresh_hash(&h("none")).await.expect("by hash"), None);
    assert_not_found(s.session(&SessionId::new()).await, "missing session");

    // Rotation is a compare-and-swap on the old hash.
    let later = t + secs(100);
    let exp = later + secs(30 * 86400);
    assert!(s.rotate_refresh(&s1.id, &h("r1"), &h("r1b"), exp, later).await.expect("rotate"));
    assert!(!s.rotate_refresh(&s1.id, &h("r1"), &h("r1c"), exp, later).await.expect("reuse"), "old hash reused");
    assert_eq!(s.session_by_refresh_hash(&h("r1")).await.expect("by hash"), None);
    let rotated = s.session_by_refresh_hash(&h("r1b")).await.expect("by hash").expect("rotated session");
    assert_eq!((rotated.id.clone(), rotated.refresh_expires_at, rotated.last_used_at), (s1.id.clone(), exp, later));
    assert!(!s.rotate_refresh(&s1.id, &h("r1b"), &h("r1d"), exp, exp + secs(1)).await.expect("expired"), "expired token");

    // Live sessions, newest first; the short one has expired by `later`.
    let live: Vec<_> = s.list_sessions(&ann.id, later).await.expect("list").into_iter().map(|x| x.id).collect();
    assert_eq!(live, vec![s2.id.clone(), s1.id.clone()]);
    let early: Vec<_> = s.list_sessions(&ann.id, t + secs(3)).await.expect("list").into_iter().map(|x| x.id).collect();
    assert_eq!(early, vec![short.id.clone(), s2.id.clone(), s1.id.clone()]);
    assert!(s.list_sessions(&bob.id, later).await.expect("list").is_empty());

    assert_not_found(s.revoke_session(&bob.id, &s1.id, later).await, "revoking another user's session");
    assert_eq!(s.session(&s1.id).await.expect("session").revoked_at, None);
    s.revoke_session(&ann.id, &s1.id, later).await.expect("revoke");
    assert_eq!(s.session(&s1.id).await.expect("session").revoked_at, Some(later));
    s.revoke_session(&ann.id, &s1.id, later + secs(5)).await.expect("revoke twice");
    assert_eq!(s.session(&s1.id).await.expect("session").revoked_at, Some(later), "first revocation kept");
    let live: Vec<_> = s.list_sessions(&ann.id, later).await.expect("list").into_iter().map(|x| x.id).collect();
    assert_eq!(live, vec![s2.id.clone()]);
    assert!(!s.rotate_refresh(&s1.id, &h("r1b"), &h("r1e"), exp, later).await.expect("revoked"), "revoked session");
    assert_not_found(s.revoke_session(&ann.id, &SessionId::new(), later).await, "missing session");
}

/// Racing rotations of one refresh token: exactly one wins.
pub async fn concurrent_rotation(s: &dyn Store) {
    let t = now();
    let ann = user(s, "race").await;
    let old = format!("{}-old", uuid::Uuid::new_v4());
    let sess = s.create_session(new_session(&ann.id, &old, t, 3600)).await.expect("session");
    let news: Vec<String> = (0..6).map(|i| format!("{old}-new{i}")).collect();
    let futures: Vec<BoxFuture<'_, _>> = news.iter().map(|n| s.rotate_refresh(&sess.id, &old, n, t + secs(7200), t + secs(1))).collect();
    let wins = join_all(futures).await.into_iter().map(|r| r.expect("rotate")).filter(|won| *won).count();
    assert_eq!(wins, 1, "exactly one rotation wins");
}
