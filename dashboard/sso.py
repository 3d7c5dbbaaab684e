"""Single sign-on in the app, when the site configures its OpenID Connect provider.

Configuration is Streamlit's own (st.login): an ``[auth]`` section in the secrets file that
`fluoro-audit serve --secrets FILE` names (README: "Single sign-on"). Without it nothing here
shows and sign-in is by password only. With it, the sign-in page offers "Sign in with single
sign-on" beside the password form (kept, so an administrator can still get in when the
provider is down).

Who may sign in, and as whom, is decided by audit.sso (an existing, active account whose
username is the vouched e-mail address). Streamlit keeps the provider's identity in its own
cookie for up to 30 days; fluoro-audit's session is the one that counts: when it ends (sign
out, idle timeout, deactivation) the identity is ended too (st.logout), so the provider's
cookie never signs someone back in without a click.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from audit import auth, sso

#: The identity this Streamlit session refused already (its subject), so a refusal is shown
#: and audited once, not at every rerun.
REFUSED_KEY = "sso_refused"


def configured() -> bool:
    """Whether the secrets hold an [auth] section (a missing or unreadable file: no)."""
    try:
        return "auth" in st.secrets
    except Exception:  # Streamlit raises its own error for a missing file; no SSO then
        return False


def _provider() -> str | None:
    """The provider's name for st.login: None for an [auth] section that is the provider
    itself, else the first named one ([auth.NAME])."""
    section: Any = st.secrets["auth"]
    if "client_id" in section:
        return None
    names = [name for name, value in section.items()
             if hasattr(value, "keys") and "client_id" in value]
    return names[0] if names else None


def _identity() -> sso.Identity | None:
    """The identity the provider vouched for in this browser, if any."""
    if not configured() or not st.user.is_logged_in:
        return None
    return sso.Identity.from_claims(dict(st.user.to_dict()))


def offer() -> None:
    """The sign-in page's button (nothing when single sign-on is not configured)."""
    if not configured():
        return
    if st.button("Sign in with single sign-on", icon=":material/badge:",
                 use_container_width=True, key="sso_sign_in"):
        st.login(_provider())


def signed_in_account(engine: Any) -> auth.Actor | None:
    """The account the provider's identity signs in as (audited); None if there is no
    identity or it was refused (the refusal is then shown by :func:`refusal`)."""
    identity = _identity()
    if identity is None or st.session_state.get(REFUSED_KEY, (None,))[0] == identity.subject:
        return None
    try:
        return sso.sign_in(engine, identity)
    except auth.SignInFailed as exc:
        st.session_state[REFUSED_KEY] = (identity.subject, str(exc))
        return None


def refusal() -> str | None:
    """Why this browser's identity could not sign in, while it is still held."""
    held = st.session_state.get(REFUSED_KEY)
    return held[1] if held and _identity() is not None else None


def end_identity() -> None:
    """End the provider's identity in this browser (fluoro-audit's session has ended)."""
    if _identity() is not None:
        st.logout()
