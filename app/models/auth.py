from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model

from app.models.enums import UserRole


class User(Model):
    # An account. In admin mode the single admin comes from the environment.
    id = fields.UUIDField(primary_key=True)
    email = fields.CharField(max_length=320, unique=True)
    name = fields.CharField(max_length=200, null=True)
    password_hash = fields.CharField(max_length=200, null=True)  # argon2; null for OAuth-only users
    role = fields.CharEnumField(UserRole, max_length=16, default=UserRole.USER, description="")
    oauth_provider = fields.CharField(max_length=32, null=True)
    oauth_subject = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "users"
        unique_together = (("oauth_provider", "oauth_subject"),)  # one account per identity, found by index


class RefreshToken(Model):
    # Stored as a SHA-256 hash. Rotation links tokens in a family: reusing a token
    # that was already rotated (a sign of theft) revokes the whole family.
    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    user_id: uuid.UUID
    family_id = fields.UUIDField(db_index=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "refresh_tokens"


class ApiKey(Model):
    # "evr_" + 64 hex characters, shown once; only its SHA-256 hash and a prefix are kept.
    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "models.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    user_id: uuid.UUID
    name = fields.CharField(max_length=200)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes: fields.JSONField[list[str]] = fields.JSONField(default=list)
    expires_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_keys"


class OAuthState(Model):
    # One pending authorization: single-use state and the PKCE code verifier.
    state = fields.CharField(max_length=64, primary_key=True)
    provider = fields.CharField(max_length=32)
    code_verifier = fields.CharField(max_length=128)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "oauth_states"
