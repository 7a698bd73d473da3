"""API views (v1, and v2 where a resource changed): validate, call one selector or service, render.

Permission is decided by the selectors and services (their typed errors become 404 and 403).
Authentication, key scopes, signed requests and throttles come from the ``api`` layer's DRF
defaults; each view declares ``required_scopes``, ``signature_required_methods`` and, for long
content, ``max_body_bytes``. v2 changed the memory resource only (docs/API_CHANGES.md): its
memory views subclass v1's with other serializers; every other v2 route is the v1 view.
Why: docs/decisions/permission-checked-in-services.md.
"""

from __future__ import annotations

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from api.parsers import LimitedJSONParser
from memories import selectors, services
from memories.api import serializers as s
from memories.auditing import record_refusal
from memories.exceptions import NotFound, PermissionDenied
from memories.models import Organization, Team
from memories.permissions import context_roles
from memories.services import NO_SUCH_USER

# ---------------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------------
# DRF's strict JSON parser with the API's structural limits (depth, array length, object size);
# a document nested too deeply to decode is a 400, not a 500.
StrictJSONParser = LimitedJSONParser

# Memory bodies carry up to MEMORIES_CONTENT_MAX_LENGTH characters of content (6 bytes each when
# JSON-escaped) and metadata: more than the global API_MAX_BODY_BYTES.
MEMORY_BODY_BYTES = 512 * 1024

CONTEXT_SCOPES = {
    "GET": "contexts:read",
    "POST": "contexts:write",
    "PUT": "contexts:write",
    "PATCH": "contexts:write",
    "DELETE": "contexts:write",
}
MEMORY_SCOPES = {
    "GET": "memories:read",
    "POST": "memories:write",
    "PUT": "memories:write",
    "PATCH": "memories:write",
    "DELETE": "memories:write",
}
ORGANIZATION_SCOPES = {
    "GET": "organizations:read",
    "POST": "organizations:write",
    "PUT": "organizations:write",
    "DELETE": "organizations:write",
}


def _field_errors(error: DjangoValidationError) -> dict:
    """A service's ``ValidationError`` as DRF's field → messages dict."""
    if hasattr(error, "error_dict"):
        return {
            ("non_field_errors" if field == NON_FIELD_ERRORS else field): messages
            for field, messages in error.message_dict.items()
        }
    return {"non_field_errors": error.messages}


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    descriptions = {
        400: "Invalid input: `error.fields` names each bad field (malformed JSON: no fields).",
        403: "You may see the object but not do this.",
        404: "Not found, or you may not see it (the two are indistinguishable).",
        415: "The body is not JSON.",
    }
    return {code: OpenApiResponse(s.ErrorEnvelopeSerializer, description=descriptions[code]) for code in codes}


class MemoriesAPIView(GenericAPIView):
    """Base view: strict JSON in, the envelope out for the domain's typed errors."""

    parser_classes = [StrictJSONParser]

    def handle_exception(self, exc):
        if isinstance(exc, NotFound | PermissionDenied):
            # Refusals a service raised are recorded already; this records the rest (the object
            # named in the URL was not visible). ASVS 4.0.3 V7.2.2.
            match = self.request.resolver_match
            attempted = f"{self.request.method} /{match.route if match else ''}"
            record_refusal(actor=self.request.user, attempted=attempted, error=exc)
        if isinstance(exc, DjangoValidationError):
            exc = exceptions.ValidationError(_field_errors(exc))
        elif isinstance(exc, NotFound | PermissionDenied):
            converted = exceptions.NotFound() if isinstance(exc, NotFound) else exceptions.PermissionDenied()
            converted.audited = True  # recorded above; the API's handler must not record it again
            exc = converted
        return super().handle_exception(exc)

    def validated(self, serializer_class, **kwargs) -> dict:
        """Validate the request body with ``serializer_class``; a 400 naming the fields otherwise."""
        serializer = serializer_class(data=self.request.data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def visible_context(self, context_id: int):
        """The context named in the URL, or a 404 if the user has no role on it.

        Resolved before anything in the body is looked up, so no answer about the body can
        reveal whether a hidden context exists.
        """
        return selectors.context_get(context_id=context_id, visible_to=self.request.user)

    def paginated(self, queryset, serializer_class, **context):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer_class(page, many=True, context=context).data)


def _context_data(user, context) -> dict:
    return s.ContextSerializer(context, context={"roles": context_roles(user, [context])}).data


def _user_field(username: str | None, *, viewer, field: str = "user"):
    """Resolve a username given in a body to an active user ``viewer`` may see, or a 400 naming ``field``.

    An existing user of another tenant gets the very answer of a name nobody has (same status,
    same body): the endpoints that take usernames are no directory of every tenant's users.
    """
    if username is None:
        return None
    user = selectors.active_user_visible_to(username=username, viewer=viewer)
    if user is None:
        raise exceptions.ValidationError({field: [NO_SUCH_USER]})
    return user


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------
class ContextListView(MemoriesAPIView):
    """Contexts: named collections of memories owned by a user, a team or an organization."""

    required_scopes = CONTEXT_SCOPES

    @extend_schema(
        operation_id="contexts_list",
        tags=["contexts"],
        summary="List the contexts you can see",
        responses={200: s.ContextSerializer(many=True)},
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.contexts_visible_to(user=request.user))
        services.context_list_record(actor=request.user, contexts=page, total=self.paginator.page.paginator.count)
        data = s.ContextSerializer(page, many=True, context={"roles": context_roles(request.user, page)}).data
        return self.get_paginated_response(data)

    @extend_schema(
        operation_id="contexts_create",
        tags=["contexts"],
        summary="Create a context (personal, or owned by a team or organization you administer)",
        request=s.ContextCreateSerializer,
        responses={201: s.ContextSerializer, **_errors(400, 403, 404, 415)},
    )
    def post(self, request):
        data = self.validated(s.ContextCreateSerializer)
        team = selectors.team_get(team_id=data["team"]) if "team" in data else None
        organization = (
            selectors.organization_get(organization_id=data["organization"]) if "organization" in data else None
        )
        context = services.context_create(
            actor=request.user, name=data["name"], scope=data["scope"], team=team, organization=organization
        )
        return Response(_context_data(request.user, context), status=status.HTTP_201_CREATED)


class ContextDetailView(MemoriesAPIView):
    """One context. Your effective role on it is in `role`."""

    required_scopes = CONTEXT_SCOPES
    signature_required_methods = {"DELETE"}

    @extend_schema(
        operation_id="contexts_retrieve",
        tags=["contexts"],
        summary="Get a context",
        responses={200: s.ContextSerializer, **_errors(404)},
    )
    def get(self, request, context_id: int):
        context = services.context_read(actor=request.user, context_id=context_id)
        return Response(_context_data(request.user, context))

    @extend_schema(
        operation_id="contexts_update",
        tags=["contexts"],
        summary="Rename a context (admin)",
        request=s.ContextUpdateSerializer,
        responses={200: s.ContextSerializer, **_errors(400, 403, 404, 415)},
    )
    def put(self, request, context_id: int):
        return self._update(request, context_id, partial=False)

    def _update(self, request, context_id: int, *, partial: bool) -> Response:
        data = self.validated(s.ContextUpdateSerializer, partial=partial)
        context = services.context_update(
            actor=request.user, context=self.visible_context(context_id), name=data.get("name")
        )
        return Response(_context_data(request.user, context))

    @extend_schema(
        operation_id="contexts_partial_update",
        tags=["contexts"],
        summary="Change some fields of a context (admin)",
        request=s.ContextUpdateSerializer,
        responses={200: s.ContextSerializer, **_errors(400, 403, 404, 415)},
    )
    def patch(self, request, context_id: int):
        return self._update(request, context_id, partial=True)

    @extend_schema(
        operation_id="contexts_destroy",
        tags=["contexts"],
        summary="Delete a context with all its memories (admin)",
        responses={204: None, **_errors(403, 404)},
    )
    def delete(self, request, context_id: int):
        services.context_delete(actor=request.user, context=self.visible_context(context_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContextShareListView(MemoriesAPIView):
    """Grants of read (viewer), write (member) or admin on one context to a user or a team."""

    required_scopes = {"GET": "contexts:read", "POST": "contexts:share"}
    signature_required_methods = {"POST"}

    @extend_schema(
        operation_id="contexts_shares_list",
        tags=["contexts"],
        summary="List who a context is shared with (admin)",
        responses={200: s.ShareSerializer(many=True), **_errors(403, 404)},
    )
    def get(self, request, context_id: int):
        context = self.visible_context(context_id)
        return self.paginated(selectors.context_shares_for_user(user=request.user, context=context), s.ShareSerializer)

    @extend_schema(
        operation_id="contexts_shares_create",
        tags=["contexts"],
        summary="Share a context with a user or a team (admin); replaces an existing grant",
        request=s.ShareCreateSerializer,
        responses={201: s.ShareSerializer, **_errors(400, 403, 404, 415)},
    )
    def post(self, request, context_id: int):
        data = self.validated(s.ShareCreateSerializer)
        context = self.visible_context(context_id)
        share = services.context_share(
            actor=request.user,
            context=context,
            permission=data["permission"],
            user=_user_field(data.get("user"), viewer=request.user),
            team=selectors.team_get(team_id=data["team"]) if "team" in data else None,
        )
        return Response(s.ShareSerializer(share).data, status=status.HTTP_201_CREATED)


class ContextShareDetailView(MemoriesAPIView):
    """One grant on a context."""

    required_scopes = {"DELETE": "contexts:share"}
    signature_required_methods = {"DELETE"}

    @extend_schema(
        operation_id="contexts_shares_destroy",
        tags=["contexts"],
        summary="Withdraw a share (admin)",
        responses={204: None, **_errors(403, 404)},
    )
    def delete(self, request, context_id: int, share_id: int):
        context = self.visible_context(context_id)
        services.context_unshare(actor=request.user, share=selectors.share_get(context=context, share_id=share_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ContextTransferView(MemoriesAPIView):
    """Give a context away: to a team or organization you administer at once; to a user as an offer."""

    required_scopes = {"POST": "contexts:share"}
    signature_required_methods = {"POST"}

    @extend_schema(
        operation_id="contexts_transfer",
        tags=["contexts"],
        summary="Give a context to a team or organization (200), or offer it to a user (202) (owner)",
        description=(
            "A team or organization you administer, or you yourself, receive the context at once (200, the "
            "context). Another user receives an offer (202, the offer): nothing moves until they accept it at "
            "`/transfer-offers/{offer_id}/accept/`, choosing which shares survive. One offer per context "
            "is pending at a time; it lapses after `MEMORIES_TRANSFER_OFFER_MAX_AGE` (7 days)."
        ),
        request=s.TransferSerializer,
        responses={200: s.ContextSerializer, 202: s.TransferOfferSerializer, **_errors(400, 403, 404, 415)},
    )
    def post(self, request, context_id: int):
        data = self.validated(s.TransferSerializer)
        context = self.visible_context(context_id)
        user = _user_field(data.get("user"), viewer=request.user)
        if user is not None and user.pk != request.user.pk:
            offer = services.context_transfer_offer(
                actor=request.user,
                context=context,
                user=user,
                base_url=request.build_absolute_uri("/").rstrip("/"),
            )
            return Response(s.TransferOfferSerializer(offer).data, status=status.HTTP_202_ACCEPTED)
        context = services.context_transfer(
            actor=request.user,
            context=context,
            user=user,
            team=selectors.team_get(team_id=data["team"]) if "team" in data else None,
            organization=(
                selectors.organization_get(organization_id=data["organization"]) if "organization" in data else None
            ),
        )
        return Response(_context_data(request.user, selectors.context_get(context_id=context.pk)))


class TransferOfferListView(MemoriesAPIView):
    """The offers of contexts made to you that you have not answered yet."""

    required_scopes = {"GET": "contexts:read"}

    @extend_schema(
        operation_id="transfer_offers_list",
        tags=["contexts"],
        summary="List the context transfer offers made to you (pending only)",
        responses={200: s.TransferOfferSerializer(many=True)},
    )
    def get(self, request):
        services.context_transfer_offers_expire()
        return self.paginated(selectors.transfer_offers_pending_for(user=request.user), s.TransferOfferSerializer)


class TransferOfferAcceptView(MemoriesAPIView):
    """Accept an offer: the context becomes yours, with only the shares you keep."""

    required_scopes = {"POST": "contexts:share"}
    signature_required_methods = {"POST"}

    @extend_schema(
        operation_id="transfer_offers_accept",
        tags=["contexts"],
        summary="Accept a transfer offer made to you, keeping only the shares you name",
        request=s.TransferOfferAcceptSerializer,
        responses={200: s.ContextSerializer, **_errors(400, 404, 415)},
    )
    def post(self, request, offer_id: int):
        data = self.validated(s.TransferOfferAcceptSerializer)
        context = services.context_transfer_offer_accept(
            actor=request.user, offer_id=_offer_id(offer_id), keep_shares=data["keep_shares"]
        )
        return Response(_context_data(request.user, selectors.context_get(context_id=context.pk)))


class TransferOfferDeclineView(MemoriesAPIView):
    """Decline an offer made to you; nothing moves."""

    required_scopes = {"POST": "contexts:share"}

    @extend_schema(
        operation_id="transfer_offers_decline",
        tags=["contexts"],
        summary="Decline a transfer offer made to you",
        request=None,
        responses={200: s.TransferOfferSerializer, **_errors(400, 404)},
    )
    def post(self, request, offer_id: int):
        offer = services.context_transfer_offer_decline(actor=request.user, offer_id=_offer_id(offer_id))
        return Response(s.TransferOfferSerializer(offer).data)


class TransferOfferWithdrawView(MemoriesAPIView):
    """Withdraw an offer you made; nothing moves."""

    required_scopes = {"POST": "contexts:share"}

    @extend_schema(
        operation_id="transfer_offers_withdraw",
        tags=["contexts"],
        summary="Withdraw a transfer offer you made",
        request=None,
        responses={200: s.TransferOfferSerializer, **_errors(400, 404)},
    )
    def post(self, request, offer_id: int):
        offer = services.context_transfer_offer_withdraw(actor=request.user, offer_id=_offer_id(offer_id))
        return Response(s.TransferOfferSerializer(offer).data)


def _offer_id(offer_id: int) -> int:
    """An offer id from the URL; one no row can have is a 404 like any unknown one."""
    if not 0 < offer_id < 2**63:
        raise NotFound()
    return offer_id


class ContextExportView(MemoriesAPIView):
    """Everything in one context, oldest memory first."""

    required_scopes = {"GET": "memories:read"}

    @extend_schema(
        operation_id="contexts_export",
        tags=["contexts"],
        summary="Export a context with all its memories (maintainer)",
        responses={200: s.ContextExportSerializer, **_errors(403, 404)},
    )
    def get(self, request, context_id: int):
        context = self.visible_context(context_id)
        memories = services.context_export(actor=request.user, context=context)
        return Response(
            {
                "context": _context_data(request.user, context),
                "memories": s.MemorySerializer(memories, many=True).data,
                "exported_at": timezone.now().isoformat(),
            }
        )


# ---------------------------------------------------------------------------------------------
# Memories
# ---------------------------------------------------------------------------------------------
def _memory_list_schemas(*, output, create) -> dict:
    """The OpenAPI description of the memory list, the same in every version but for its serializers."""
    return {
        "get": extend_schema(
            operation_id="memories_list",
            tags=["memories"],
            summary="List the memories you can read, newest first",
            parameters=[s.MemoryListFilterSerializer],
            responses={200: output(many=True), **_errors(400, 404)},
        ),
        "post": extend_schema(
            operation_id="memories_create",
            tags=["memories"],
            summary="Create a memory in a context (member)",
            request=create,
            responses={201: output, **_errors(400, 403, 404, 415)},
        ),
    }


def _memory_detail_schemas(*, output, write) -> dict:
    """The OpenAPI description of one memory, the same in every version but for its serializers."""
    return {
        "get": extend_schema(
            operation_id="memories_retrieve",
            tags=["memories"],
            summary="Get a memory",
            responses={200: output, **_errors(404)},
        ),
        "put": extend_schema(
            operation_id="memories_update",
            tags=["memories"],
            summary="Replace a memory (member); omitted optional fields return to their defaults",
            request=write,
            responses={200: output, **_errors(400, 403, 404, 415)},
        ),
        "patch": extend_schema(
            operation_id="memories_partial_update",
            tags=["memories"],
            summary="Change some fields of a memory (member)",
            request=write,
            responses={200: output, **_errors(400, 403, 404, 415)},
        ),
        "delete": extend_schema(
            operation_id="memories_destroy",
            tags=["memories"],
            summary="Delete a memory (maintainer)",
            responses={204: None, **_errors(403, 404)},
        ),
    }


@extend_schema_view(**_memory_list_schemas(output=s.MemorySerializer, create=s.MemoryCreateSerializer))
class MemoryListView(MemoriesAPIView):
    """Memories: notes, commands, AI context and snippets, each in one context."""

    required_scopes = MEMORY_SCOPES
    max_body_bytes = MEMORY_BODY_BYTES
    output_serializer = s.MemorySerializer
    create_serializer = s.MemoryCreateSerializer

    def get(self, request):
        filters = s.MemoryListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        context = selectors.context_get(context_id=params["context"]) if "context" in params else None
        memories = selectors.memory_list_for_user(
            user=request.user, context=context, kind=params.get("kind"), tag=params.get("tag")
        )
        page = self.paginate_queryset(memories)
        services.memory_list_record(
            actor=request.user,
            memories=page,
            # None when the count was capped (api/pagination.py): the exact total was not counted.
            total=None if self.paginator.page.paginator.count_capped else self.paginator.page.paginator.count,
            filters={"context": params.get("context"), "kind": params.get("kind"), "tag": params.get("tag")},
        )
        return self.get_paginated_response(self.output_serializer(page, many=True).data)

    def post(self, request):
        data = dict(self.validated(self.create_serializer))
        context = selectors.context_get(context_id=data.pop("context"))
        memory = services.memory_create(actor=request.user, context=context, **data)
        return Response(self.output_serializer(memory).data, status=status.HTTP_201_CREATED)


@extend_schema_view(**_memory_detail_schemas(output=s.MemorySerializer, write=s.MemoryWriteSerializer))
class MemoryDetailView(MemoriesAPIView):
    """One memory."""

    required_scopes = MEMORY_SCOPES
    signature_required_methods = {"DELETE"}
    max_body_bytes = MEMORY_BODY_BYTES
    output_serializer = s.MemorySerializer
    write_serializer = s.MemoryWriteSerializer

    def get(self, request, memory_id: int):
        return Response(self.output_serializer(services.memory_read(actor=request.user, memory_id=memory_id)).data)

    def _update(self, request, memory_id: int, *, partial: bool) -> Response:
        data = self.validated(self.write_serializer, partial=partial)
        memory = services.memory_update(actor=request.user, memory=selectors.memory_get(memory_id=memory_id), **data)
        return Response(self.output_serializer(memory).data)

    def put(self, request, memory_id: int):
        return self._update(request, memory_id, partial=False)

    def patch(self, request, memory_id: int):
        return self._update(request, memory_id, partial=True)

    def delete(self, request, memory_id: int):
        services.memory_delete(actor=request.user, memory=selectors.memory_get(memory_id=memory_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


# v2: the memory resource with ``context_id`` and tags as objects (docs/API_CHANGES.md).
@extend_schema_view(**_memory_list_schemas(output=s.MemoryV2Serializer, create=s.MemoryCreateV2Serializer))
class MemoryListV2View(MemoryListView):
    """Memories (v2): ``context_id`` names the context; each tag is an object."""

    output_serializer = s.MemoryV2Serializer
    create_serializer = s.MemoryCreateV2Serializer


@extend_schema_view(**_memory_detail_schemas(output=s.MemoryV2Serializer, write=s.MemoryWriteV2Serializer))
class MemoryDetailV2View(MemoryDetailView):
    """One memory (v2)."""

    output_serializer = s.MemoryV2Serializer
    write_serializer = s.MemoryWriteV2Serializer


# ---------------------------------------------------------------------------------------------
# Organizations and teams
# ---------------------------------------------------------------------------------------------
class OrganizationListView(MemoriesAPIView):
    """Organizations: own organization contexts and contain teams."""

    required_scopes = ORGANIZATION_SCOPES

    @extend_schema(
        operation_id="organizations_list",
        tags=["organizations"],
        summary="List the organizations you are a member of",
        responses={200: s.OrganizationSerializer(many=True)},
    )
    def get(self, request):
        return self.paginated(selectors.organizations_visible_to(user=request.user), s.OrganizationSerializer)

    @extend_schema(
        operation_id="organizations_create",
        tags=["organizations"],
        summary="Create an organization; you become its owner",
        request=s.OrganizationCreateSerializer,
        responses={201: s.OrganizationSerializer, **_errors(400, 415)},
    )
    def post(self, request):
        data = self.validated(s.OrganizationCreateSerializer)
        organization = services.organization_create(actor=request.user, name=data["name"], slug=data["slug"])
        return Response(s.OrganizationSerializer(organization).data, status=status.HTTP_201_CREATED)


class OrganizationDetailView(MemoriesAPIView):
    """One organization."""

    required_scopes = ORGANIZATION_SCOPES

    @extend_schema(
        operation_id="organizations_retrieve",
        tags=["organizations"],
        summary="Get an organization you are a member of",
        responses={200: s.OrganizationSerializer, **_errors(404)},
    )
    def get(self, request, organization_id: int):
        organization = selectors.organization_get_for_user(user=request.user, organization_id=organization_id)
        return Response(s.OrganizationSerializer(organization).data)


class TeamListView(MemoriesAPIView):
    """Teams: groups inside an organization that own team contexts."""

    required_scopes = ORGANIZATION_SCOPES

    @extend_schema(
        operation_id="teams_list",
        tags=["teams"],
        summary="List the teams you have a role on (directly or through the organization)",
        responses={200: s.TeamSerializer(many=True)},
    )
    def get(self, request):
        return self.paginated(selectors.teams_visible_to(user=request.user), s.TeamSerializer)

    @extend_schema(
        operation_id="teams_create",
        tags=["teams"],
        summary="Create a team in an organization you administer; you become its owner",
        request=s.TeamCreateSerializer,
        responses={201: s.TeamSerializer, **_errors(400, 403, 404, 415)},
    )
    def post(self, request):
        data = self.validated(s.TeamCreateSerializer)
        organization = selectors.organization_get(organization_id=data["organization"])
        team = services.team_create(actor=request.user, organization=organization, name=data["name"], slug=data["slug"])
        return Response(s.TeamSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailView(MemoriesAPIView):
    """One team."""

    required_scopes = ORGANIZATION_SCOPES

    @extend_schema(
        operation_id="teams_retrieve",
        tags=["teams"],
        summary="Get a team you have a role on",
        responses={200: s.TeamSerializer, **_errors(404)},
    )
    def get(self, request, team_id: int):
        return Response(s.TeamSerializer(selectors.team_get_for_user(user=request.user, team_id=team_id)).data)


# ---------------------------------------------------------------------------------------------
# Members of a team or an organization: one implementation, documented once per URL family
# ---------------------------------------------------------------------------------------------
class _MembershipTargetMixin:
    """Finds the team or organization named in the URL."""

    def target(self, kwargs: dict) -> Team | Organization:
        raise NotImplementedError

    @staticmethod
    def target_kwargs(target: Team | Organization) -> dict:
        return {"team": target} if isinstance(target, Team) else {"organization": target}


class _MemberListView(_MembershipTargetMixin, MemoriesAPIView):
    required_scopes = ORGANIZATION_SCOPES
    signature_required_methods = {"POST"}  # granting a role

    def get(self, request, **kwargs):
        target = self.target(kwargs)
        if isinstance(target, Team):
            members = selectors.team_members(user=request.user, team=target)
        else:
            members = selectors.organization_members(user=request.user, organization=target)
        return self.paginated(members, s.MembershipSerializer)

    def post(self, request, **kwargs):
        data = self.validated(s.MembershipAddSerializer)
        target = self.target(kwargs)
        membership = services.membership_add(
            actor=request.user,
            user=_user_field(data["user"], viewer=request.user),
            role=data["role"],
            **self.target_kwargs(target),
        )
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)


class _MemberDetailView(_MembershipTargetMixin, MemoriesAPIView):
    required_scopes = ORGANIZATION_SCOPES
    signature_required_methods = {"PUT", "DELETE"}  # changing or removing a role

    def membership(self, kwargs: dict):
        target = self.target(kwargs)
        return selectors.membership_get(user_id=kwargs["user_id"], **self.target_kwargs(target))

    def put(self, request, **kwargs):
        data = self.validated(s.MembershipRoleSerializer)
        membership = services.membership_set_role(
            actor=request.user, membership=self.membership(kwargs), role=data["role"]
        )
        return Response(s.MembershipSerializer(membership).data)

    def delete(self, request, **kwargs):
        services.membership_remove(actor=request.user, membership=self.membership(kwargs))
        return Response(status=status.HTTP_204_NO_CONTENT)


def _member_list_schema(tag: str, noun: str):
    return extend_schema_view(
        get=extend_schema(
            operation_id=f"{tag}_members_list",
            tags=[tag],
            summary=f"List the members of {noun}",
            responses={200: s.MembershipSerializer(many=True), **_errors(404)},
        ),
        post=extend_schema(
            operation_id=f"{tag}_members_create",
            tags=[tag],
            summary=f"Add a member to {noun} (admin; at most your own role)",
            request=s.MembershipAddSerializer,
            responses={201: s.MembershipSerializer, **_errors(400, 403, 404, 415)},
        ),
    )


def _member_detail_schema(tag: str, noun: str):
    return extend_schema_view(
        put=extend_schema(
            operation_id=f"{tag}_members_update",
            tags=[tag],
            summary=f"Change a member's role in {noun} (admin; the last owner stays owner)",
            request=s.MembershipRoleSerializer,
            responses={200: s.MembershipSerializer, **_errors(400, 403, 404, 415)},
        ),
        delete=extend_schema(
            operation_id=f"{tag}_members_destroy",
            tags=[tag],
            summary=f"Remove a member from {noun} (admin, or yourself to leave)",
            responses={204: None, **_errors(400, 403, 404)},
        ),
    )


class _TeamTarget(_MembershipTargetMixin):
    def target(self, kwargs: dict) -> Team:
        return selectors.team_get(team_id=kwargs["team_id"], visible_to=self.request.user)


class _OrganizationTarget(_MembershipTargetMixin):
    def target(self, kwargs: dict) -> Organization:
        return selectors.organization_get(organization_id=kwargs["organization_id"], visible_to=self.request.user)


@_member_list_schema("teams", "a team")
class TeamMemberListView(_TeamTarget, _MemberListView):
    """Members of a team."""


@_member_detail_schema("teams", "a team")
class TeamMemberDetailView(_TeamTarget, _MemberDetailView):
    """One member of a team."""


@_member_list_schema("organizations", "an organization")
class OrganizationMemberListView(_OrganizationTarget, _MemberListView):
    """Members of an organization."""


@_member_detail_schema("organizations", "an organization")
class OrganizationMemberDetailView(_OrganizationTarget, _MemberDetailView):
    """One member of an organization."""
