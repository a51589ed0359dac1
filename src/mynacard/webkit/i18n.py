"""Page text in Japanese first, English available. Each part registers its own messages.

The language comes from ``?lang=`` (remembered in a cookie), then the cookie, then Japanese.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["LANGUAGES", "register", "translator"]

LANGUAGES = ("ja", "en")
_CATALOG: dict[str, dict[str, str]] = {"ja": {}, "en": {}}


def register(messages: dict[str, tuple[str, str]]) -> None:
    """Add ``key → (Japanese, English)`` messages; a key may be registered once."""
    for key, (ja, en) in messages.items():
        if key in _CATALOG["ja"] and _CATALOG["ja"][key] != ja:
            raise ValueError(f"message {key!r} registered twice")
        _CATALOG["ja"][key] = ja
        _CATALOG["en"][key] = en


def translator(lang: str) -> Callable[..., str]:
    table = _CATALOG.get(lang, _CATALOG["ja"])

    def t(key: str, **values: object) -> str:
        text = table.get(key) or _CATALOG["ja"].get(key) or key
        return text.format(**values) if values else text

    return t


register({
    "site.name": ("マイナンバーカード交付管理", "My Number Card issuance"),
    "nav.home": ("ホーム", "Home"),
    "nav.login": ("ログイン", "Log in"),
    "nav.logout": ("ログアウト", "Log out"),
    "nav.language": ("English", "日本語"),
    "login.title": ("職員ログイン", "Staff log in"),
    "login.username": ("ユーザー名", "Username"),
    "login.password": ("パスワード", "Password"),
    "login.submit": ("ログイン", "Log in"),
    "login.failed": ("ユーザー名またはパスワードが違います。", "Wrong username or password."),
    "error.title": ("エラー", "Error"),
    "error.not_found": ("見つかりません。", "Not found."),
    "error.forbidden": ("この操作は許可されていません。", "You may not do this."),
    "error.login_required": ("ログインが必要です。", "Please log in."),
})
