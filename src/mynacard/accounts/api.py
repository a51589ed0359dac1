"""HTTP routes of accounts: the staff login (with the one-time password's replacement) and logout, the operator's
pages ``/admin/accounts``, and the JSON API ``/api/admin/accounts`` for provisioning. Thin: parse, call the
service, render. Every admin act passes the caller and their address to the service, which audits it. Logins,
sessions and the audit log run on the wall clock, never on the installation's business clock
(``Context.clock``), which a test or a demo may set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from mynacard.accounts import service
from mynacard.accounts.model import ONE_TIME_PASSWORD_VALID, AccountView, KeyView, one_time_password_expires
from mynacard.accounts.sessions import utcnow
from mynacard.clock import JST
from mynacard.context import Context
from mynacard.errors import DomainError, InvalidInput
from mynacard.installation import demo_logins, is_demo
from mynacard.principal import Principal, Role
from mynacard.webkit.csrf import login_csrf
from mynacard.webkit.deps import STAFF_COOKIE, client_address, context, principal, render
from mynacard.webkit.i18n import register

__all__ = ["router"]

router = APIRouter()

register({
    "login.locked": ("このアカウントはパスワードの誤りが続いたためロックされています。"
                     "管理者(J-LIS)に解除を依頼してください。",
                     "This account is locked after too many wrong passwords. Ask an operator to unlock it."),
    "login.throttled": ("誤ったパスワードが続いたため、{s} 秒後まで受け付けません。",
                        "Too many wrong passwords: try again in {s} seconds."),
    "login.expired_title": ("一時パスワードの有効期限切れ", "One-time password expired"),
    "login.expired": ("この一時パスワードは有効期限(設定から{h}時間)を過ぎたため使えません。"
                      "管理者(J-LIS)に新しい一時パスワードの発行(パスワード再設定)を依頼してください。",
                      "This one-time password has expired ({h} hours after it was set). Ask an operator for a new "
                      "one (a password reset)."),
    "login.back": ("ログイン画面へ", "Back to the login page"),
    "login.change_title": ("新しいパスワードの設定", "Set a new password"),
    "login.change_why": ("一時パスワードでログインしました。続けるには新しいパスワードを設定してください。",
                         "You logged in with a one-time password. Set a new one to go on."),
    "login.old_password": ("現在の(一時)パスワード", "Current (one-time) password"),
    "login.new_password": ("新しいパスワード(12文字以上)", "New password (12 characters or more)"),
    "login.new_password2": ("新しいパスワード(確認)", "New password (again)"),
    "login.mismatch": ("確認用のパスワードが一致しません。", "The two new passwords differ."),
    "login.demo_title": ("デモ用のログイン", "Demo logins"),
    "login.demo_note": ("これはデモ環境です。次のアカウントを自由に試せます(本番環境では表示されません)。",
                        "This is a demo installation; try these accounts (never shown in a real installation)."),
    "accounts.title": ("アカウント管理", "Accounts"),
    "accounts.username": ("ユーザー名", "Username"),
    "accounts.role": ("役割", "Role"),
    "accounts.municipality": ("団体コード", "Municipality code"),
    "accounts.status": ("状態", "Status"),
    "accounts.keys": ("APIキー", "API keys"),
    "accounts.sessions": ("ログイン中", "Sessions"),
    "accounts.create": ("アカウントを作成", "Create an account"),
    "accounts.kind": ("種類", "Kind"),
    "accounts.kind_staff": ("職員(パスワード)", "Staff (password)"),
    "accounts.kind_machine": ("機器(APIキー)", "Machine (API key)"),
    "accounts.filter": ("絞り込み", "Filter"),
    "accounts.all": ("すべて", "All"),
    "accounts.secret_title": ("一度だけ表示します", "Shown once"),
    "accounts.secret_note": ("この値は二度と表示されません。安全な方法で本人または機器の管理者に渡してください。",
                             "This is never shown again. Hand it over safely."),
    "accounts.password_once": ("一時パスワード(初回ログイン時に変更)", "One-time password (changed at first login)"),
    "accounts.valid_until": ("有効期限", "Valid until"),
    "accounts.valid_hours": ("設定から{h}時間。過ぎたら再設定で新しい一時パスワードを発行します。",
                             "{h} hours after it was set; after that a reset issues a new one."),
    "accounts.one_time_expired": ("期限切れ", "expired"),
    "accounts.key_once": ("APIキー", "API key"),
    "accounts.back": ("アカウント一覧へ", "Back to accounts"),
    "accounts.disable": ("利用停止", "Disable"),
    "accounts.enable": ("利用再開", "Enable"),
    "accounts.unlock": ("ロック解除", "Unlock"),
    "accounts.address": ("解除する接続元アドレス(任意)", "Client address to clear (optional)"),
    "accounts.reset": ("パスワード再設定(一時パスワードを発行)", "Reset password (issue a one-time one)"),
    "accounts.change_role": ("役割・団体の変更", "Change role or municipality"),
    "accounts.add_key": ("APIキーを追加", "Add an API key"),
    "accounts.label": ("ラベル", "Label"),
    "accounts.expires_days": ("有効日数(空欄は無期限)", "Valid for days (empty: no expiry)"),
    "accounts.revoke": ("失効", "Revoke"),
    "accounts.created": ("作成", "Created"),
    "accounts.last_used": ("最終利用", "Last used"),
    "accounts.expires": ("有効期限", "Expires"),
    "accounts.revoked": ("失効", "Revoked"),
    "accounts.audit": ("監査記録", "Audit log"),
    "accounts.audit_ok": ("監査記録のハッシュチェーンは正常です({n} 件)。",
                          "The audit log's hash chain holds ({n} entries)."),
    "accounts.audit_bad": ("監査記録に不整合があります: {p}", "The audit log is broken: {p}"),
    "accounts.when": ("日時", "When"),
    "accounts.who": ("実施者", "By"),
    "accounts.action": ("操作", "Action"),
    "accounts.from": ("接続元", "From"),
    "accounts.failed": ("連続失敗", "Failed logins"),
    "status.active": ("有効", "active"),
    "status.locked": ("ロック中", "locked"),
    "status.disabled": ("停止中", "disabled"),
})

Username = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
KeyId = Annotated[int, Path(ge=1, le=2**63 - 1)]
_ROLES = [r.value for r in Role if r is not Role.RESIDENT]


def _operator(request: Request) -> Principal:
    who = principal(request)
    who.require(Role.OPERATOR)
    return who


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# --- login -------------------------------------------------------------------------------------------------------

def _login_page(request: Request, status_code: int = 200, **values: Any) -> HTMLResponse:
    ctx = context(request)
    with ctx.db.connect() as conn:
        demo = demo_logins(conn) if is_demo(conn) else []
    values.setdefault("next", "/")
    response = render(request, "login.html", status_code=status_code, demo=demo, **values)
    response.headers["cache-control"] = "no-store"
    return response


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _logged_in(request: Request, token: str, target: str) -> Response:
    response = RedirectResponse(_safe_next(target), status_code=303)
    response.set_cookie(STAFF_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/")
    return response


_VALID_HOURS = int(ONE_TIME_PASSWORD_VALID.total_seconds() // 3600)


def _moment(at: datetime) -> str:
    """A moment as staff read it: JST first, UTC beside it."""
    return f"{at.astimezone(JST):%Y-%m-%d %H:%M} JST ({at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"


def _refused(request: Request, outcome: service.LoginOutcome, next: str, username: str) -> Response:
    """The login page again with the reason, or — for an expired one-time password — the page that says to ask
    for a new one."""
    if outcome.refusal == "expired":
        response = render(request, "login_expired.html", status_code=401, hours=_VALID_HOURS)
        response.headers["cache-control"] = "no-store"
        return response
    status = {"throttled": 429, "locked": 423}.get(outcome.refusal or "", 401)
    response = _login_page(request, status_code=status, next=next, failed=outcome.refusal,
                           retry_after=outcome.retry_after, username=username)
    if outcome.retry_after:
        response.headers["retry-after"] = str(outcome.retry_after)
    return response


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str = Query("/", max_length=512)) -> Response:
    return _login_page(request, next=next)


@router.post("/login", include_in_schema=False, dependencies=[Depends(login_csrf)])
def login(request: Request, username: str = Form(..., max_length=64), password: str = Form(..., max_length=256),
          next: str = Form("/", max_length=512)) -> Response:
    outcome = service.attempt_login(context(request), username, password, client_address(request), utcnow())
    if outcome.token is not None:
        return _logged_in(request, outcome.token, next)
    if outcome.refusal == "must_change":
        return render(request, "login_password.html", username=username, next=next, problem=None)
    return _refused(request, outcome, next, username)


@router.post("/login/password", include_in_schema=False, dependencies=[Depends(login_csrf)])
def change_password(request: Request, username: str = Form(..., max_length=64),
                    old_password: str = Form(..., max_length=256), new_password: str = Form(..., max_length=256),
                    new_password2: str = Form(..., max_length=256), next: str = Form("/", max_length=512)) -> Response:
    def again(problem: str, status: int = 422) -> HTMLResponse:
        return render(request, "login_password.html", status_code=status, username=username, next=next,
                      problem=problem)

    if new_password != new_password2:
        return again("login.mismatch")
    try:
        outcome = service.change_password_at_login(context(request), username, old_password, new_password,
                                                   client_address(request), utcnow())
    except InvalidInput as exc:
        return again(str(exc))
    if outcome.refusal == "expired":  # it expired while the form was open
        return _refused(request, outcome, next, username)
    if outcome.token is None:
        return _login_page(request, status_code=401, next=next, failed=outcome.refusal,
                           retry_after=outcome.retry_after, username=username)
    return _logged_in(request, outcome.token, next)


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    token = request.cookies.get(STAFF_COOKIE)
    if token:
        service.end_session(context(request), token, utcnow())
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(STAFF_COOKIE, path="/")
    return response


# --- the operator's pages ----------------------------------------------------------------------------------------

def _secret_page(request: Request, username: str, password: str | None = None, key: str | None = None,
                 set_at: datetime | None = None) -> Response:
    """A secret shown once; a one-time password (set at ``set_at``) with until when it works."""
    until = _moment(one_time_password_expires(set_at)) if password and set_at else None
    response = render(request, "admin_secret.html", username=username, password=password, key=key,
                      valid_until=until, hours=_VALID_HOURS)
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/admin/accounts", response_class=HTMLResponse, include_in_schema=False)
def accounts_page(request: Request, role: str = Query("", max_length=16),
                  municipality_code: str = Query("", max_length=6, pattern=r"^\d{0,6}$")) -> Response:
    who = _operator(request)
    ctx = context(request)
    chosen = Role(role) if role in _ROLES else None
    rows = service.list_accounts(ctx, who, utcnow(), role=chosen, municipality_code=municipality_code or None)
    return render(request, "admin_accounts.html", rows=rows, roles=_ROLES, role=role,
                  municipality_code=municipality_code, report=service.verify_audit(ctx), problem=None)


@router.post("/admin/accounts", include_in_schema=False)
def create_page(request: Request, username: str = Form(..., max_length=64), role: str = Form(..., max_length=16),
                municipality_code: str = Form("", max_length=6), kind: str = Form("staff", max_length=8),
                label: str = Form("key", max_length=64)) -> Response:
    who = _operator(request)
    ctx = context(request)
    at, client = utcnow(), client_address(request)
    try:
        if kind == "machine":
            service.create_account(ctx, username, role, None, at, municipality_code or None, actor=who, client=client)
            _, key = service.add_api_key(ctx, who, username, at, label=label or "key", client=client)
            return _secret_page(request, username, key=key)
        from mynacard.accounts.passwords import one_time_password

        password = one_time_password()
        service.create_account(ctx, username, role, password, at, municipality_code or None, actor=who,
                               client=client, must_change_password=True)
        return _secret_page(request, username, password=password, set_at=at)
    except DomainError as exc:
        rows = service.list_accounts(ctx, who, at)
        return render(request, "admin_accounts.html", status_code=422 if isinstance(exc, InvalidInput) else 409,
                      rows=rows, roles=_ROLES, role="", municipality_code="", report=service.verify_audit(ctx),
                      problem=str(exc), form={"username": username, "role": role,
                                              "municipality_code": municipality_code, "kind": kind})


@router.get("/admin/accounts/{username}", response_class=HTMLResponse, include_in_schema=False)
def account_page(request: Request, username: Username) -> Response:
    who = _operator(request)
    ctx = context(request)
    account = service.get_account(ctx, who, username, utcnow())
    return render(request, "admin_account.html", a=account, roles=_ROLES, now=utcnow(), moment=_moment,
                  log=service.audit_entries(ctx, who, username), problem=request.query_params.get("problem"))


def _act(request: Request, username: str, act: Any) -> Response:
    """Run an act on the account and go back to its page (with the refusal's reason, if any)."""
    who = _operator(request)
    try:
        result = act(context(request), who, utcnow(), client_address(request))
    except DomainError as exc:
        account = service.get_account(context(request), who, username, utcnow())
        return render(request, "admin_account.html", status_code=422 if isinstance(exc, InvalidInput) else 409,
                      a=account, roles=_ROLES, now=utcnow(), moment=_moment,
                      log=service.audit_entries(context(request), who, username), problem=str(exc))
    if isinstance(result, Response):
        return result
    return RedirectResponse(f"/admin/accounts/{username}", status_code=303)


@router.post("/admin/accounts/{username}/disable", include_in_schema=False)
def disable_page(request: Request, username: Username) -> Response:
    return _act(request, username, lambda ctx, who, at, client: service.set_disabled(
        ctx, who, username, True, at, client))


@router.post("/admin/accounts/{username}/enable", include_in_schema=False)
def enable_page(request: Request, username: Username) -> Response:
    return _act(request, username, lambda ctx, who, at, client: service.set_disabled(
        ctx, who, username, False, at, client))


@router.post("/admin/accounts/{username}/unlock", include_in_schema=False)
def unlock_page(request: Request, username: Username, address: str = Form("", max_length=64)) -> Response:
    return _act(request, username, lambda ctx, who, at, client: service.unlock(
        ctx, who, username, at, client, address=address.strip() or None))


@router.post("/admin/accounts/{username}/password", include_in_schema=False)
def reset_page(request: Request, username: Username) -> Response:
    return _act(request, username, lambda ctx, who, at, client: _secret_page(
        request, username, password=service.reset_password(ctx, who, username, at, client), set_at=at))


@router.post("/admin/accounts/{username}/role", include_in_schema=False)
def role_page(request: Request, username: Username, role: str = Form(..., max_length=16),
              municipality_code: str = Form("", max_length=6)) -> Response:
    return _act(request, username, lambda ctx, who, at, client: service.set_role(
        ctx, who, username, role, municipality_code or None, at, client))


@router.post("/admin/accounts/{username}/keys", include_in_schema=False)
def add_key_page(request: Request, username: Username, label: str = Form("key", max_length=64),
                 days: str = Form("", max_length=5)) -> Response:
    def act(ctx: Context, who: Principal, at: datetime, client: str) -> Response:
        if days.strip() and (not days.strip().isdigit() or not 1 <= int(days) <= 3650):
            raise InvalidInput("the days a key is valid are a whole number from 1 to 3650")
        expires = at + timedelta(days=int(days)) if days.strip() else None
        _, key = service.add_api_key(ctx, who, username, at, label=label, expires_at=expires, client=client)
        return _secret_page(request, username, key=key)

    return _act(request, username, act)


@router.post("/admin/accounts/{username}/keys/{key_id}/revoke", include_in_schema=False)
def revoke_key_page(request: Request, username: Username, key_id: KeyId) -> Response:
    return _act(request, username, lambda ctx, who, at, client: service.revoke_api_key(
        ctx, who, username, key_id, at, client))


# --- the JSON API ------------------------------------------------------------------------------------------------

class AccountIn(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    role: Role
    municipality_code: str | None = Field(None, min_length=6, max_length=6, pattern=r"^\d{6}$")
    password: str | None = Field(None, min_length=1, max_length=256,
                                 description="A staff account's password; omit for a one-time one (or a machine)")
    machine: bool = Field(False, description="A machine account: no password, an API key instead")
    key_label: str = Field("key", min_length=1, max_length=64)


class RoleIn(BaseModel):
    role: Role
    municipality_code: str | None = Field(None, min_length=6, max_length=6, pattern=r"^\d{6}$")


class KeyIn(BaseModel):
    label: str = Field("key", min_length=1, max_length=64)
    expires_at: datetime | None = None


class UnlockIn(BaseModel):
    address: str | None = Field(None, min_length=1, max_length=64)


def _key_json(k: KeyView) -> dict[str, Any]:
    return {"id": k.id, "label": k.label, "prefix": k.prefix, "created_at": k.created_at,
            "last_used_at": k.last_used_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at}


def _account_json(a: AccountView) -> dict[str, Any]:
    return {"username": a.username, "role": a.role.value, "municipality_code": a.municipality_code,
            "status": a.status, "created_at": a.created_at, "disabled_at": a.disabled_at, "locked_at": a.locked_at,
            "failed_logins": a.failed_logins, "has_password": a.has_password,
            "must_change_password": a.must_change_password,
            "one_time_password_expires_at": a.one_time_password_expires_at, "sessions": a.sessions,
            "keys": [_key_json(k) for k in a.keys]}


@router.get("/api/admin/accounts", tags=["accounts"])
def api_list(request: Request, role: Role | None = None,
             municipality_code: str | None = Query(None, min_length=6, max_length=6, pattern=r"^\d{6}$"),
             who: Principal = Depends(_operator)) -> list[dict[str, Any]]:
    return [_account_json(a) for a in service.list_accounts(context(request), who, utcnow(), role=role,
                                                            municipality_code=municipality_code)]


@router.post("/api/admin/accounts", tags=["accounts"], status_code=201)
def api_create(request: Request, body: AccountIn, who: Principal = Depends(_operator)) -> dict[str, Any]:
    ctx, at, client = context(request), utcnow(), client_address(request)
    answer: dict[str, Any] = {}
    if body.machine:
        if body.password is not None:
            raise InvalidInput("a machine account has no password", ["password: not for a machine account"])
        service.create_account(ctx, body.username, body.role, None, at, body.municipality_code, actor=who,
                               client=client)
        _, answer["api_key"] = service.add_api_key(ctx, who, body.username, at, label=body.key_label,
                                                        client=client)
    else:
        from mynacard.accounts.passwords import one_time_password

        password = body.password or one_time_password()
        service.create_account(ctx, body.username, body.role, password, at, body.municipality_code, actor=who,
                               client=client, must_change_password=body.password is None)
        if body.password is None:
            answer["one_time_password"] = password
            answer["one_time_password_expires_at"] = one_time_password_expires(at)
    return {"account": _account_json(service.get_account(ctx, who, body.username, at)), **answer}


@router.get("/api/admin/accounts/{username}", tags=["accounts"])
def api_show(request: Request, username: Username, who: Principal = Depends(_operator)) -> dict[str, Any]:
    return _account_json(service.get_account(context(request), who, username, utcnow()))


@router.post("/api/admin/accounts/{username}/disable", tags=["accounts"])
def api_disable(request: Request, username: Username, who: Principal = Depends(_operator)) -> dict[str, Any]:
    return _account_json(service.set_disabled(context(request), who, username, True, utcnow(),
                                              client_address(request)))


@router.post("/api/admin/accounts/{username}/enable", tags=["accounts"])
def api_enable(request: Request, username: Username, who: Principal = Depends(_operator)) -> dict[str, Any]:
    return _account_json(service.set_disabled(context(request), who, username, False, utcnow(),
                                              client_address(request)))


@router.post("/api/admin/accounts/{username}/unlock", tags=["accounts"])
def api_unlock(request: Request, username: Username, body: UnlockIn | None = None,
               who: Principal = Depends(_operator)) -> dict[str, Any]:
    return _account_json(service.unlock(context(request), who, username, utcnow(), client_address(request),
                                        address=body.address if body else None))


@router.post("/api/admin/accounts/{username}/password", tags=["accounts"])
def api_reset(request: Request, username: Username, who: Principal = Depends(_operator)) -> dict[str, Any]:
    at = utcnow()
    password = service.reset_password(context(request), who, username, at, client_address(request))
    return {"one_time_password": password, "one_time_password_expires_at": one_time_password_expires(at)}


@router.post("/api/admin/accounts/{username}/role", tags=["accounts"])
def api_role(request: Request, username: Username, body: RoleIn, who: Principal = Depends(_operator)) -> dict[str, Any]:
    return _account_json(service.set_role(context(request), who, username, body.role, body.municipality_code,
                                          utcnow(), client_address(request)))


@router.post("/api/admin/accounts/{username}/keys", tags=["accounts"], status_code=201)
def api_add_key(request: Request, username: Username, body: KeyIn, who: Principal = Depends(_operator)) -> Response:
    key_id, key = service.add_api_key(context(request), who, username, utcnow(), label=body.label,
                                      expires_at=body.expires_at, client=client_address(request))
    return JSONResponse({"id": key_id, "api_key": key}, status_code=201, headers={"cache-control": "no-store"})


@router.delete("/api/admin/accounts/{username}/keys/{key_id}", tags=["accounts"], status_code=204)
def api_revoke_key(request: Request, username: Username, key_id: KeyId,
                   who: Principal = Depends(_operator)) -> Response:
    service.revoke_api_key(context(request), who, username, key_id, utcnow(), client_address(request))
    return Response(status_code=204)


@router.get("/api/admin/accounts-audit", tags=["accounts"])
def api_audit(request: Request, who: Principal = Depends(_operator)) -> dict[str, Any]:
    report = service.verify_audit(context(request))
    return {"ok": report.ok, "entries": report.entries, "problems": report.problems}
