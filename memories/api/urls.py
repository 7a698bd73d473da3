"""API v1 routes, mounted at /api/v1/ (namespace ``api-v1``)."""

from django.urls import path

from memories.api import views

app_name = "api-v1"

urlpatterns = [
    path("contexts/", views.ContextListView.as_view(), name="context-list"),
    path("contexts/<int:context_id>/", views.ContextDetailView.as_view(), name="context-detail"),
    path("contexts/<int:context_id>/shares/", views.ContextShareListView.as_view(), name="context-share-list"),
    path(
        "contexts/<int:context_id>/shares/<int:share_id>/",
        views.ContextShareDetailView.as_view(),
        name="context-share-detail",
    ),
    path("contexts/<int:context_id>/transfer/", views.ContextTransferView.as_view(), name="context-transfer"),
    path("transfer-offers/", views.TransferOfferListView.as_view(), name="transfer-offer-list"),
    path(
        "transfer-offers/<int:offer_id>/accept/", views.TransferOfferAcceptView.as_view(), name="transfer-offer-accept"
    ),
    path(
        "transfer-offers/<int:offer_id>/decline/",
        views.TransferOfferDeclineView.as_view(),
        name="transfer-offer-decline",
    ),
    path(
        "transfer-offers/<int:offer_id>/withdraw/",
        views.TransferOfferWithdrawView.as_view(),
        name="transfer-offer-withdraw",
    ),
    path("contexts/<int:context_id>/export/", views.ContextExportView.as_view(), name="context-export"),
    path("memories/", views.MemoryListView.as_view(), name="memory-list"),
    path("memories/<int:memory_id>/", views.MemoryDetailView.as_view(), name="memory-detail"),
    path("organizations/", views.OrganizationListView.as_view(), name="organization-list"),
    path("organizations/<int:organization_id>/", views.OrganizationDetailView.as_view(), name="organization-detail"),
    path(
        "organizations/<int:organization_id>/members/",
        views.OrganizationMemberListView.as_view(),
        name="organization-member-list",
    ),
    path(
        "organizations/<int:organization_id>/members/<int:user_id>/",
        views.OrganizationMemberDetailView.as_view(),
        name="organization-member-detail",
    ),
    path("teams/", views.TeamListView.as_view(), name="team-list"),
    path("teams/<int:team_id>/", views.TeamDetailView.as_view(), name="team-detail"),
    path("teams/<int:team_id>/members/", views.TeamMemberListView.as_view(), name="team-member-list"),
    path(
        "teams/<int:team_id>/members/<int:user_id>/",
        views.TeamMemberDetailView.as_view(),
        name="team-member-detail",
    ),
]
