"""Accounts: read any user's public profile, change or delete your own (erasing it for good)."""

from __future__ import annotations

from uuid import UUID

from sanic import Blueprint, Request, json
from sanic.response import JSONResponse

from api.context import CurrentUser, Services, command, now, off_loop, parse, signed_in
from api.docs import WRITTEN, Answer, documented
from api.present import user_json
from api.schemas import Message, UserChangeBody, UserEnvelope
from api.security import hash_password, verify_password
from consumers.mail import erase_outbox
from domain.errors import ForbiddenError, InvalidFieldsError, NotFoundError
from domain.presentation import utc
from projections.events_view import owned_event_ids
from projections.people import Account

bp = Blueprint("users", url_prefix="/api/user")


# Every route below takes `me` for the signed-in user's own id: one route per method, so
# `me` works for whatever methods /api/user/{user_id} has.
ME = "me"


@bp.get("/<user_id:str>")
@documented("A user's profile (the email only when it is you); `me` is you",
            {200: Answer(UserEnvelope), 404: None}, auth=True)
@signed_in
async def get_user(request: Request, services: Services, user: CurrentUser,
                   user_id: str) -> JSONResponse:
    return json({"user": user_json(await _account(services, _resolve(user, user_id)), user.id)})


@bp.put("/<user_id:str>")
@documented("Change your username, email or password (`me` is you)",
            {200: Answer(UserEnvelope), 403: None, 404: None, 409: None},
            body=UserChangeBody, auth=True)
@signed_in
async def change_user(request: Request, services: Services, user: CurrentUser,
                      user_id: str) -> JSONResponse:
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
        await off_loop(services.people.update, user.id, changes, utc(now()))
        await off_loop(
            services.app.change_user,
            UUID(user.id),
            profile_fields=sorted(set(changes) - {"password_hash"}),
            password="password_hash" in changes,
        )
    return json({"user": user_json(await _account(services, user.id), user.id)})


@bp.delete("/<user_id:str>")
@documented("Delete your account (`me` is you): its events are cancelled and its personal "
            "data erased",
            {200: Answer(Message, WRITTEN), 403: None, 404: None}, auth=True)
@signed_in
async def delete_user(request: Request, services: Services, user: CurrentUser,
                      user_id: str) -> JSONResponse:
    await _own(services, user, user_id)
    # Bring the events view up to the log's head first, so no event the user owns is missed.
    await off_loop(services.follower.run_once)
    owned_ids = await off_loop(lambda: owned_event_ids(services.db.connection(), user.id))
    owned = [UUID(i) for i in owned_ids]
    written = await command(services, services.app.delete_user, UUID(user.id), owned)
    await off_loop(services.people.erase, user.id)
    await off_loop(erase_outbox, services.outbox, user.id)
    return json({"message": f'User "{user.username}" deleted'},
                headers={"X-Position": str(written.position)})


async def _account(services: Services, user_id: str) -> Account:
    account = await services.people_reader.by_id(user_id)
    if account is None:
        raise NotFoundError(f"no user with id {user_id}")
    return account


def _resolve(user: CurrentUser, user_id: str) -> str:
    return user.id if user_id == ME else user_id


async def _own(services: Services, user: CurrentUser, user_id: str) -> Account:
    user_id = _resolve(user, user_id)
    if user_id != user.id:
        await _account(services, user_id)
        raise ForbiddenError("you may only change or delete your own account")
    return await _account(services, user_id)
