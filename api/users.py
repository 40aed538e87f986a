"""Accounts: read any user's public profile, change or delete your own (erasing it for good)."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.auth import issue
from api.context import Commands, CurrentUser, now, off_loop, parse, signed_in
from api.docs import WRITTEN, Answer, documented
from api.operators import Operators
from api.present import position_header, user_json
from api.schemas import Message, UserChangeBody, UserChanged, UserEnvelope
from api.security import Tokens, hash_password, verify_password
from domain.accounts import Accounts
from domain.errors import ForbiddenError, InvalidFieldsError, NotFoundError
from domain.presentation import utc
from projections.people import Account, PeopleReader
from projections.sessions import Sessions

bp = Blueprint("users", url_prefix="/api/user")


@dataclass(frozen=True)
class UsersServices:
    """What the account handlers use: the accounts service for changes and erasure, the
    profiles read from the event loop, and sessions and tokens for a new password's pair."""

    accounts: Accounts
    command: Commands
    people_reader: PeopleReader
    sessions: Sessions
    tokens: Tokens
    operators: Operators



# Every route below takes `me` for the signed-in user's own id, so `me` works for whatever
# methods /api/user/{user_id} has; /api/user/me is also a path of its own for each of them,
# so generated clients get functions that need no id.
ME = "me"


@bp.get("/me", name="me")
@bp.get("/<user_id:str>")
@documented("Your own account", {200: Answer(UserEnvelope)}, auth=True, routes=["me"])
@documented("A user's profile (the email only when it is you); `me` is you",
            {200: Answer(UserEnvelope), 404: None}, auth=True, routes=["get_user"])
@signed_in(UsersServices)
async def get_user(request: Request, services: UsersServices, user: CurrentUser,
                   user_id: str = ME) -> JSONResponse:
    return json({"user": user_json(await _account(services, _resolve(user, user_id)), user.id)})


@bp.put("/me", name="change_me")
@bp.put("/<user_id:str>")
@documented("Change your own username, email or password",
            {200: Answer(UserChanged), 409: None}, body=UserChangeBody, auth=True,
            routes=["change_me"])
@documented("Change your username, email or password (`me` is you)",
            {200: Answer(UserChanged), 403: None, 404: None, 409: None},
            body=UserChangeBody, auth=True, routes=["change_user"])
@signed_in(UsersServices)
async def change_user(request: Request, services: UsersServices, user: CurrentUser,
                      user_id: str = ME) -> JSONResponse:
    account = await _own(services, user, user_id)
    data = parse(request, UserChangeBody)
    changes = {
        name: value
        for name, value in (("username", data.username), ("email", data.email))
        if value is not None and value != getattr(account, name)
    }
    if data.password is not None:
        if data.current_password is None:
            raise InvalidFieldsError({"current_password": "is required to change the password"})
        if not await verify_password(account.password_hash, data.current_password):
            raise InvalidFieldsError({"current_password": "is not your current password"})
        changes["password_hash"] = await hash_password(data.password)
    if changes:
        await services.command(services.accounts.change, user.id, changes, utc(now()))
    account = await _account(services, user.id)
    if "password_hash" not in changes:
        return json({"user": user_json(account, user.id)})
    # A new password ends every session of the account (tokens carry the password's stamp,
    # and every refresh token is revoked); the one that changed it gets a fresh pair.
    await off_loop(services.sessions.revoke_all, user.id)
    return json({"user": user_json(account, user.id), **await issue(services, account)})


@bp.delete("/me", name="delete_me")
@bp.delete("/<user_id:str>")
@documented("Delete your own account: its events are cancelled and its personal data erased",
            {200: Answer(Message, WRITTEN)}, auth=True, routes=["delete_me"])
@documented("Delete an account (`me` is you; an operator may delete any): its events are "
            "cancelled and its personal data erased; the facts name who deleted it",
            {200: Answer(Message, WRITTEN), 403: None, 404: None}, auth=True,
            routes=["delete_user"])
@signed_in(UsersServices)
async def delete_user(request: Request, services: UsersServices, user: CurrentUser,
                      user_id: str = ME) -> JSONResponse:
    account = await _own(services, user, user_id, operators=True)
    written = await services.command(services.accounts.delete, account.id, by=user.id)
    return json({"message": f'User "{account.username}" deleted'},
                headers=position_header(written))


async def _account(services: UsersServices, user_id: str) -> Account:
    account = await services.people_reader.by_id(user_id) if _is_uuid(user_id) else None
    if account is None:
        raise NotFoundError(f"no user with id {user_id}")
    return account


def _is_uuid(text: str) -> bool:
    """Account ids are UUIDs: nothing else is looked up."""
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _resolve(user: CurrentUser, user_id: str) -> str:
    return user.id if user_id == ME else user_id


async def _own(services: UsersServices, user: CurrentUser, user_id: str, *,
               operators: bool = False) -> Account:
    """Your own account; with `operators`, anyone's for an operator."""
    user_id = _resolve(user, user_id)
    account = await _account(services, user_id)
    if user_id != user.id and not (operators and await services.operators.include(user)):
        raise ForbiddenError("you may only change or delete your own account")
    return account
