"""The pages people open in a browser: Django views that render a shell template.

Each page is a client of the public REST API and the ``/ws/`` socket (the bundle built from
``templates/frontend/``); a view only checks the login and, for a graph or a run in its path,
that the signed-in user owns it (another user's object is a 404, like in the API).
"""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import path

from canvas.core.exceptions import NotFoundError
from graphs.selectors import graph_get_for_user
from workflows.selectors import execution_get_for_user


def _page(request, page: str, title: str, **props):
    return render(request, "pages/app.html", {"page": page, "title": title, "props": props})


@login_required
def graph_list(request):
    return _page(request, "graphs", "Canvases")


def _graph_or_404(request, graph_id):
    try:
        return graph_get_for_user(user=request.user, graph_id=graph_id)
    except NotFoundError:
        raise Http404("No such graph.") from None


@login_required
def graph_editor(request, graph_id):
    graph = _graph_or_404(request, graph_id)
    return _page(request, "editor", graph.name, graph=str(graph.pk))


@login_required
def graph_runs(request, graph_id):
    graph = _graph_or_404(request, graph_id)
    return _page(request, "runs", f"Runs of {graph.name}", graph=str(graph.pk))


@login_required
def execution_detail(request, execution_id):
    try:
        execution = execution_get_for_user(user=request.user, execution_id=execution_id)
    except NotFoundError:
        raise Http404("No such run.") from None
    return _page(request, "run", "Run", execution=str(execution.pk), graph=str(execution.graph_id))


@login_required
def chat(request):
    return _page(request, "chat", "Chat")


@login_required
def keys(request):
    return _page(request, "keys", "Provider keys")


urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("canvas/", graph_list, name="page-graphs"),
    path("canvas/runs/<str:execution_id>/", execution_detail, name="page-run"),
    path("canvas/<str:graph_id>/", graph_editor, name="page-editor"),
    path("canvas/<str:graph_id>/runs/", graph_runs, name="page-runs"),
    path("chat/", chat, name="page-chat"),
    path("keys/", keys, name="page-keys"),
]
