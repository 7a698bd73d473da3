"""Serializers of API v1: strict input serializers, plain output serializers, the error envelope.

Input serializers only validate; they never save (the views hand the validated data to a
service). They are strict on purpose (OWASP ASVS 4.0.3 V5.1.2, V13.1.5): unknown fields are
refused by name instead of silently dropped, strings must be JSON strings and integers JSON
integers (DRF would otherwise coerce ``123`` into ``"123"`` and ``"7"`` into ``7``), and every size
limit is stated in the field's ``help_text`` so it appears in the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api import serializers as api_serializers
from memories import validation
from memories.models import Context, ContextShare, ContextTransferOffer, Memory, Role

ID_MAX = 2**63 - 1
USERNAME_MAX_LENGTH = 150
SLUG_MAX_LENGTH = 60


def _messages(error: DjangoValidationError) -> list[str]:
    """The messages of a service-level validation error, whatever field it names."""
    return [message for messages in error.message_dict.values() for message in messages] if hasattr(
        error, "error_dict"
    ) else list(error.messages)


def _run(cleaner, value):
    """Run a ``memories.validation`` cleaner, turning its error into DRF's for this field."""
    try:
        return cleaner(value)
    except DjangoValidationError as error:
        raise serializers.ValidationError(_messages(error)) from None


# ---------------------------------------------------------------------------------------------
# Strict fields
# ---------------------------------------------------------------------------------------------
class StrictCharField(serializers.CharField):
    """A ``CharField`` that accepts only JSON strings (no number coerced into text)."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """An ``IntegerField`` that accepts only JSON integers (no strings, floats or booleans), ≥ 1."""

    default_error_messages = {"invalid": "Must be an integer."}

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """A ``ChoiceField`` that accepts only JSON strings."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class ContentField(StrictCharField):
    """Memory content: whitespace kept as typed; the maximum read from settings when built."""

    def __init__(self, **kwargs):
        maximum = validation.content_max_length()
        super().__init__(
            **{
                "max_length": maximum,
                "trim_whitespace": False,
                "help_text": f"The memory's text. Required, not blank, at most {maximum} characters.",
                **kwargs,
            }
        )


@extend_schema_field({"type": "object", "additionalProperties": True})
class MetadataField(serializers.Field):
    """A JSON object within the size and depth limits (checked before anything recurses into it)."""

    def __init__(self, **kwargs):
        maximum = validation.metadata_max_bytes()
        kwargs.setdefault(
            "help_text",
            f"Free-form JSON object, at most {maximum} bytes of compact UTF-8 JSON and "
            f"{validation.METADATA_MAX_DEPTH} levels deep.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        return _run(validation.clean_metadata, data)

    def to_representation(self, value):
        return value


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare, naming each one, together with every other error."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)
        errors: dict = {}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as error:
            errors.update(error.detail)
            value = None
        for name in sorted(set(data) - set(self.fields), key=str):
            errors[str(name)] = ["Unknown field."]
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def create(self, validated_data):  # pragma: no cover - input serializers never save
        raise NotImplementedError("input serializers validate only; the services write")

    def update(self, instance, validated_data):  # pragma: no cover - see create()
        raise NotImplementedError("input serializers validate only; the services write")


# ---------------------------------------------------------------------------------------------
# The error envelope (rendered by api.errors.exception_handler; documented by the api app)
# ---------------------------------------------------------------------------------------------
ErrorBodySerializer = api_serializers.ErrorBodySerializer
ErrorEnvelopeSerializer = api_serializers.ErrorEnvelopeSerializer


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------
class OwnerSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "team", "organization"])
    id = serializers.IntegerField()
    name = serializers.CharField(help_text="Username, team name or organization name.")


class ContextSerializer(serializers.Serializer):
    """A context as the API shows it, with the requesting user's effective role on it."""

    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    scope = serializers.ChoiceField(choices=Context.Scope.choices, read_only=True)
    owner = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(OwnerSerializer)
    def get_owner(self, context: Context) -> dict:
        if context.scope == Context.Scope.PERSONAL:
            return {"type": "user", "id": context.owner_user_id, "name": context.owner_user.username}
        if context.scope == Context.Scope.TEAM:
            return {"type": "team", "id": context.owner_team_id, "name": context.owner_team.name}
        return {"type": "organization", "id": context.owner_organization_id, "name": context.owner_organization.name}

    @extend_schema_field(
        serializers.ChoiceField(
            choices=Role.choices,
            allow_null=True,
            help_text="Your effective role on this context (see the permission matrix).",
        )
    )
    def get_role(self, context: Context) -> str | None:
        roles = self.context.get("roles", {})
        role = roles.get(context.pk)
        return str(role) if role is not None else None


class ContextCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=validation.NAME_MAX_LENGTH, help_text="1 to 200 characters.")
    scope = StrictChoiceField(choices=Context.Scope.choices)
    team = StrictIntegerField(required=False, help_text="Team id; required for scope 'team', else absent.")
    organization = StrictIntegerField(
        required=False, help_text="Organization id; required for scope 'organization', else absent."
    )

    def validate(self, attrs):
        scope = attrs["scope"]
        errors = {}
        if scope == Context.Scope.TEAM and "team" not in attrs:
            errors["team"] = ["Required for a team context."]
        if scope == Context.Scope.ORGANIZATION and "organization" not in attrs:
            errors["organization"] = ["Required for an organization context."]
        for field in ("team", "organization"):
            if field in attrs and scope != field:
                errors[field] = [f"Only allowed for scope '{field}'."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ContextUpdateSerializer(StrictSerializer):
    name = StrictCharField(max_length=validation.NAME_MAX_LENGTH, help_text="1 to 200 characters.")


class ShareSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    context = serializers.IntegerField(source="context_id", read_only=True)
    user = serializers.CharField(source="user.username", read_only=True, allow_null=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)
    permission = serializers.ChoiceField(choices=ContextShare.Permission.choices, read_only=True)
    granted_by = serializers.CharField(source="granted_by.username", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)


class _OneOfSerializer(StrictSerializer):
    """Checks that exactly one of ``one_of`` was given, naming them all otherwise."""

    one_of: tuple[str, ...] = ()

    def validate(self, attrs):
        given = [name for name in self.one_of if name in attrs]
        if len(given) != 1:
            message = f"Give exactly one of: {', '.join(self.one_of)}."
            raise serializers.ValidationError({name: [message] for name in self.one_of})
        return attrs


class ShareCreateSerializer(_OneOfSerializer):
    one_of = ("user", "team")

    user = StrictCharField(max_length=USERNAME_MAX_LENGTH, required=False, help_text="Username of the grantee.")
    team = StrictIntegerField(required=False, help_text="Id of the grantee team.")
    permission = StrictChoiceField(
        choices=ContextShare.Permission.choices, help_text="read → viewer, write → member, admin → admin."
    )


class TransferSerializer(_OneOfSerializer):
    one_of = ("user", "team", "organization")

    user = StrictCharField(
        max_length=USERNAME_MAX_LENGTH,
        required=False,
        help_text="Username to offer the context to: nothing moves until they accept (202, the offer).",
    )
    team = StrictIntegerField(required=False, help_text="New owner team's id (scope becomes team).")
    organization = StrictIntegerField(
        required=False, help_text="New owner organization's id (scope becomes organization)."
    )


class TransferOfferContextSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    scope = serializers.ChoiceField(choices=Context.Scope.choices, read_only=True)


class TransferOfferSerializer(serializers.Serializer):
    """An offer of a context to a user: nothing has moved until the recipient accepts it."""

    id = serializers.IntegerField(read_only=True)
    context = TransferOfferContextSerializer(read_only=True)
    sender = serializers.CharField(source="sender.username", read_only=True, allow_null=True)
    recipient = serializers.CharField(source="recipient.username", read_only=True)
    status = serializers.ChoiceField(choices=ContextTransferOffer.Status.choices, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    shares = ShareSerializer(
        source="context.shares.all",
        many=True,
        read_only=True,
        help_text="The context's shares today: on acceptance only those named in keep_shares survive.",
    )


class TransferOfferAcceptSerializer(StrictSerializer):
    keep_shares = serializers.ListField(
        child=StrictIntegerField(),
        required=False,
        default=list,
        max_length=1000,
        help_text="Ids of the shares to keep; every other share (one to the sender included) is removed.",
    )


# ---------------------------------------------------------------------------------------------
# Memories
# ---------------------------------------------------------------------------------------------
class MemorySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    context = serializers.IntegerField(source="context_id", read_only=True)
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    kind = serializers.ChoiceField(choices=Memory.Kind.choices, read_only=True)
    source = serializers.CharField(read_only=True)
    content = serializers.CharField(read_only=True)
    metadata = MetadataField(read_only=True)
    tags = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_tags(self, memory: Memory) -> list[str]:
        # .all() uses the prefetched tags; a list page costs one query for all its tags.
        return [tag.name for tag in memory.tags.all()]


class MemoryWriteSerializer(StrictSerializer):
    """The fields a memory's author writes. On PUT, omitted optional fields return to defaults."""

    kind = StrictChoiceField(choices=Memory.Kind.choices, default=Memory.Kind.NOTE)
    source = StrictCharField(
        max_length=validation.SOURCE_MAX_LENGTH,
        allow_blank=True,
        default="",
        help_text="Where the memory came from (e.g. cli, vscode). At most 100 characters.",
    )
    content = ContentField()
    metadata = MetadataField(default=dict)
    tags = serializers.ListField(
        child=StrictCharField(max_length=validation.TAG_MAX_LENGTH, help_text="1 to 50 characters."),
        max_length=validation.TAGS_MAX_COUNT,
        default=list,
        help_text="At most 20 tags of 1 to 50 characters; stored lower-case, duplicates merged.",
    )

    def validate_content(self, value: str) -> str:
        return _run(validation.clean_content, value)

    def validate_source(self, value: str) -> str:
        return _run(validation.clean_source, value)

    def validate_tags(self, value: list[str]) -> list[str]:
        return _run(validation.clean_tags, value)


class MemoryCreateSerializer(MemoryWriteSerializer):
    context = StrictIntegerField(help_text="Id of a context where you may create memories.")


# --- v2: ``context_id`` instead of ``context``; tags as objects ``{"name": ...}`` -------------
class TagSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True, help_text="Lower-case, 1 to 50 characters.")


class TagInputSerializer(StrictSerializer):
    name = StrictCharField(max_length=validation.TAG_MAX_LENGTH, help_text="1 to 50 characters.")

    def validate(self, attrs):
        # A PATCH makes DRF skip required fields in nested objects too (``root.partial``), but a
        # tag without a name is never valid.
        if "name" not in attrs:
            raise serializers.ValidationError({"name": ["This field is required."]})
        return attrs


class MemoryV2Serializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    context_id = serializers.IntegerField(read_only=True)
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True)
    kind = serializers.ChoiceField(choices=Memory.Kind.choices, read_only=True)
    source = serializers.CharField(read_only=True)
    content = serializers.CharField(read_only=True)
    metadata = MetadataField(read_only=True)
    tags = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(TagSerializer(many=True))
    def get_tags(self, memory: Memory) -> list[dict]:
        return [{"name": tag.name} for tag in memory.tags.all()]


class MemoryWriteV2Serializer(MemoryWriteSerializer):
    """v2 input: as v1, with tags as objects."""

    tags = serializers.ListField(
        child=TagInputSerializer(),
        max_length=validation.TAGS_MAX_COUNT,
        default=list,
        help_text='At most 20 tags, each {"name": 1 to 50 characters}; stored lower-case, duplicates merged.',
    )

    def validate_tags(self, value: list[dict]) -> list[str]:
        return _run(validation.clean_tags, [item["name"] for item in value])


class MemoryCreateV2Serializer(MemoryWriteV2Serializer):
    context_id = StrictIntegerField(help_text="Id of a context where you may create memories.")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        attrs["context"] = attrs.pop("context_id")
        return attrs


class MemoryListFilterSerializer(serializers.Serializer):
    """Query parameters of the memory list (strings in a URL, so ordinary coercion applies)."""

    context = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX, help_text="Context id.")
    kind = serializers.ChoiceField(choices=Memory.Kind.choices, required=False)
    tag = serializers.CharField(required=False, max_length=validation.TAG_MAX_LENGTH, help_text="One tag.")

    def validate_tag(self, value: str) -> str:
        return _run(validation.clean_tag, value)


class ContextExportSerializer(serializers.Serializer):
    context = ContextSerializer()
    memories = MemorySerializer(many=True)
    exported_at = serializers.DateTimeField()


# ---------------------------------------------------------------------------------------------
# Organizations, teams, members
# ---------------------------------------------------------------------------------------------
_slug_validator = RegexValidator(r"^[-a-zA-Z0-9_]+\Z", "Use only letters, numbers, underscores or hyphens.")


class OrganizationSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    slug = serializers.SlugField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class OrganizationCreateSerializer(StrictSerializer):
    name = StrictCharField(max_length=validation.NAME_MAX_LENGTH, help_text="1 to 200 characters.")
    slug = StrictCharField(
        max_length=SLUG_MAX_LENGTH,
        validators=[_slug_validator],
        help_text="Unique; letters, numbers, underscores, hyphens; at most 60 characters; stored lower-case.",
    )


class TeamSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    organization = serializers.IntegerField(source="organization_id", read_only=True)
    name = serializers.CharField(read_only=True)
    slug = serializers.SlugField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class TeamCreateSerializer(StrictSerializer):
    organization = StrictIntegerField(help_text="Id of an organization you administer.")
    name = StrictCharField(max_length=validation.NAME_MAX_LENGTH, help_text="1 to 200 characters.")
    slug = StrictCharField(
        max_length=SLUG_MAX_LENGTH,
        validators=[_slug_validator],
        help_text="Unique within the organization; letters, numbers, underscores, hyphens; at most 60 characters.",
    )


class MembershipSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)


class MembershipAddSerializer(StrictSerializer):
    user = StrictCharField(max_length=USERNAME_MAX_LENGTH, help_text="Username of the new member.")
    role = StrictChoiceField(choices=Role.choices, help_text="At most your own role.")


class MembershipRoleSerializer(StrictSerializer):
    role = StrictChoiceField(choices=Role.choices, help_text="At most your own role.")
