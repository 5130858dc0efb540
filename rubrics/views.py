"""Rubric pages for researchers: list, detail, the htmx editor, diff, export and
import, pinning on a project, and derived labels. Every view: access helper first,
one service call, then a redirect (plain forms) or a partial (htmx)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import retarget


from . import forms, portable, services
from .access import (IMPORT_REFUSED, get_rubric_for, get_version_for, get_version_to_change, import_slug,
                     may_change, may_import_into, projects_pinning, projects_run_by, projects_seen_by,
                     require_researcher)
from .diff import version_diff
from .models import Criterion, Rubric, RubricVersion
from .presenters import PREFERENCE_SCALE, criterion_view
from .schema import CriterionError

SAMPLE_CONVERSATION = [{"role": "user", "content": "An example prompt: *how do I boil an egg?*"}]
SAMPLE_RESPONSES = [
    {"id": 1, "label": "A", "text": "Put the egg in boiling water for 9 minutes, then cool it in cold water."},
    {"id": 2, "label": "B", "text": "Eggs are a good source of protein."},
]


def _editor_url(version: RubricVersion) -> str:
    return reverse("rubric-edit", args=[version.rubric.slug, version.number])


# --- list, create, import ---------------------------------------------------------------


@login_required
@require_GET
def rubric_list(request):
    require_researcher(request.user)
    rubrics = Rubric.objects.prefetch_related("versions").order_by("name")
    return render(request, "rubrics/list.html", {
        "rubrics": rubrics, "templates": services.template_list(), "values": {}, "errors": {},
    })


@login_required
@require_POST
def rubric_create(request):
    require_researcher(request.user)
    name, slug, template = (request.POST.get(k, "").strip() for k in ("name", "slug", "template"))
    errors = {}
    if not name:
        errors["name"] = "give the rubric a name"
    if not slug or not slug.replace("-", "").isalnum() or slug.lower() != slug:
        errors["slug"] = "lowercase letters, digits and hyphens"
    elif Rubric.objects.filter(slug=slug).exists():
        errors["slug"] = "a rubric with this slug exists"
    if template and template not in {t["slug"] for t in services.template_list()}:
        errors["template"] = "unknown template"
    if errors:
        return render(request, "rubrics/list.html", {
            "rubrics": Rubric.objects.order_by("name"), "templates": services.template_list(),
            "values": request.POST, "errors": errors,
        }, status=400)
    if template:
        version = services.rubric_create_from_template(template=template, slug=slug, name=name,
                                                       created_by=request.user)
    else:
        version = services.rubric_create(name=name, slug=slug, created_by=request.user)
    return redirect(_editor_url(version))


@login_required
@require_POST
def rubric_import(request):
    require_researcher(request.user)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "Choose a .json or .yaml file to import.")
        return redirect("rubric-list")
    fmt = "json" if upload.name.lower().endswith(".json") else "yaml"
    try:
        doc = portable.load_text(upload.read(portable.MAX_DOCUMENT_BYTES + 1), fmt)
        slug = request.POST.get("slug", "").strip() or None
        target = import_slug(doc, slug)
        if not may_import_into(request.user, target):
            raise portable.DocumentError(IMPORT_REFUSED.format(slug=target))
        version = services.rubric_version_import(document=doc, slug=slug, created_by=request.user)
    except (portable.DocumentError, CriterionError, IntegrityError) as exc:
        messages.error(request, f"{upload.name}: {exc}. Nothing was imported.")
        return redirect("rubric-list")
    messages.success(request, f"Imported as {version.rubric.name} v{version.number} (draft).")
    return redirect(_editor_url(version))


# --- detail, export, diff -----------------------------------------------------------------


@login_required
@require_GET
def rubric_detail(request, slug: str):
    rubric = get_rubric_for(request.user, slug)
    versions = list(rubric.versions.all().order_by("-number"))
    wanted = request.GET.get("v")
    version = next((v for v in versions if str(v.number) == wanted), None) or (versions[0] if versions else None)
    referenced = set(RubricVersion.objects.filter(rubric=rubric).referenced().values_list("pk", flat=True))
    seen = projects_seen_by(request.user)
    label_counts = RubricVersion.objects.filter(rubric=rubric).label_counts(projects=seen)
    manageable = list(projects_run_by(request.user))
    return render(request, "rubrics/detail.html", {
        "rubric": rubric, "versions": versions, "version": version, "referenced": referenced,
        "criteria": list(version.criteria.all()) if version else [],
        "projects": manageable,
        "pinned": {p.pk: p for p in projects_pinning(rubric).filter(pk__in=seen)},
        "label_counts": label_counts,
        "may_change": may_change(request.user, rubric),
    })


@login_required
@require_GET
def version_export(request, slug: str, number: int, fmt: str):
    if fmt not in ("json", "yaml"):
        raise Http404("Export as .json or .yaml.")
    version = get_version_for(request.user, slug, number)
    doc = portable.build_document(version)
    body = portable.dump_json(doc) if fmt == "json" else portable.dump_yaml(doc)
    response = HttpResponse(body, content_type="application/json" if fmt == "json" else "application/yaml")
    response["Content-Disposition"] = f'attachment; filename="{slug}-v{number}.{fmt}"'
    return response


@login_required
@require_GET
def rubric_diff(request, slug: str):
    rubric = get_rubric_for(request.user, slug)
    versions = list(rubric.versions.order_by("number"))
    if len(versions) < 2:
        messages.info(request, "Only one version so far: nothing to compare.")
        return redirect("rubric-detail", slug=slug)
    by_number = {str(v.number): v for v in versions}
    old = by_number.get(request.GET.get("from", ""), versions[-2])
    new = by_number.get(request.GET.get("to", ""), versions[-1])
    return render(request, "rubrics/diff.html", {
        "rubric": rubric, "versions": versions, "diff": version_diff(old, new),
    })


# --- the editor ---------------------------------------------------------------------------


def _editor_context(version: RubricVersion, **extra) -> dict:
    criteria = list(version.criteria.all())
    views = [criterion_view(c) for c in criteria]
    return {
        "rubric": version.rubric,
        "version": version,
        "criteria": criteria,
        "scales": forms.SCALES,
        "polarities": forms.POLARITIES,
        "kinds": forms.KINDS,
        "aggregations": RubricVersion.Aggregation.choices,
        "add_values": {"scale": "likert", "min": 0, "max": 4, "priority": len(criteria) + 1,
                       "weight": 1, "margin": 0, "polarity": "higher_better", "kind": "principle"},
        "add_errors": {},
        "add_levels": forms.anchor_levels("likert", 0, 4),
        "edit_key": None,
        "preview": _preview(version, views),
        **extra,
    }


def _preview(version: RubricVersion, views: list[dict]) -> dict:
    """The annotator's forms, filled with sample text, built from the draft itself."""
    rated = [v for v in views if v["scale"] in ("likert", "binary", "severity", "spans")]
    pairwise = [v for v in views if v["scale"] == "pairwise"]
    base = {"conversation": SAMPLE_CONVERSATION, "rubric_version": {"ask_overall_preference": version.ask_overall_preference}}
    return {
        "pairwise": {**base, "kind": "pairwise", "responses": SAMPLE_RESPONSES, "criteria": pairwise},
        "rating": {**base, "kind": "rating", "responses": SAMPLE_RESPONSES[:1], "criteria": rated},
        "scale": PREFERENCE_SCALE,
    }


def _editor_response(request, version: RubricVersion, status: int = 200, **extra):
    version = RubricVersion.objects.select_related("rubric").get(pk=version.pk)
    ctx = _editor_context(version, **extra)
    template = "rubrics/partials/editor_main.html" if request.htmx else "rubrics/editor.html"
    return render(request, template, ctx, status=status)


def _editor_done(request, version: RubricVersion):
    """After a successful edit: htmx gets the re-rendered editor; a plain form post
    is redirected (post/redirect/get), so links and forms work without JavaScript."""
    if not request.htmx:
        return redirect(_editor_url(version))
    return _editor_response(request, version)


def _draft_or_redirect(request, version: RubricVersion):
    if version.status != RubricVersion.Status.DRAFT:
        messages.info(request, f"v{version.number} is {version.status} and can no longer change. "
                               "Use “New draft from this version” to edit a copy.")
        return redirect(version.get_absolute_url())
    return None


@login_required
@require_GET
def version_edit(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    refused = _draft_or_redirect(request, version)
    if refused:
        return refused
    edit_key = request.GET.get("edit")
    extra = {}
    if edit_key:
        crit = get_object_or_404(Criterion, version=version, key=edit_key)
        extra = {"edit_key": edit_key, "edit_values": forms.initial_from_spec(crit.as_spec()), "edit_errors": {},
                 "edit_levels": forms.anchor_levels(crit.scale, crit.config.get("min"), crit.config.get("max"))}
    template = "rubrics/partials/editor_main.html" if request.htmx else "rubrics/editor.html"
    return render(request, template, _editor_context(version, **extra))


def _locked(request, version, exc):
    messages.error(request, str(exc))
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = version.get_absolute_url()
        return response
    return redirect(version.get_absolute_url())


@login_required
@require_POST
def version_settings(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    aggregation = request.POST.get("aggregation", version.aggregation)
    try:
        services.rubric_version_update(
            version=version,
            guidelines=request.POST.get("guidelines", ""),
            changelog=request.POST.get("changelog", ""),
            aggregation=aggregation,
            ask_overall_preference=request.POST.get("ask_overall_preference") in ("on", "true", "1"),
        )
    except services.RubricVersionLocked as exc:
        return _locked(request, version, exc)
    except Exception as exc:  # full_clean's ValidationError: an unknown aggregation
        from django.core.exceptions import ValidationError

        if not isinstance(exc, ValidationError):
            raise
        return _editor_response(request, version, status=400, settings_errors=exc.message_dict)
    if not request.htmx:
        messages.success(request, "Saved.")
        return redirect(_editor_url(version))
    return _editor_response(request, version, settings_saved=True)


@login_required
@require_POST
def criterion_add(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    data, errors = forms.spec_from_post(request.POST)
    if not errors:
        try:
            services.criterion_add(version=version, data=data)
        except services.RubricVersionLocked as exc:
            return _locked(request, version, exc)
        except CriterionError as exc:
            errors = forms.errors_by_field(exc.errors)
    if errors:
        extra = {"add_values": request.POST, "add_errors": errors,
                 "add_levels": forms.anchor_levels(data["scale"], request.POST.get("min"), request.POST.get("max"))}
        response = _editor_response(request, version, status=200 if request.htmx else 400, **extra)
        return response
    return _editor_done(request, version)


@login_required
@require_http_methods(["GET", "POST"])
def criterion_edit(request, slug: str, number: int, key: str):
    """GET: the inline form for one criterion. POST: save it (or, with ``refresh``,
    re-render the form for a changed scale or range without saving)."""
    version = get_version_to_change(request.user, slug, number)
    crit = get_object_or_404(Criterion, version=version, key=key)
    if request.method == "GET":
        values = forms.initial_from_spec(crit.as_spec())
        levels = forms.anchor_levels(crit.scale, crit.config.get("min"), crit.config.get("max"))
        return render(request, "rubrics/partials/criterion_form.html", _form_context(version, crit, values, {}, levels))
    data, errors = forms.spec_from_post(request.POST)
    levels = forms.anchor_levels(data["scale"], request.POST.get("min"), request.POST.get("max"))
    if request.POST.get("refresh"):
        return render(request, "rubrics/partials/criterion_form.html",
                      _form_context(version, crit, request.POST, {}, levels))
    if not errors:
        try:
            services.criterion_update(criterion=crit, data=data, replace=True)
        except services.RubricVersionLocked as exc:
            return _locked(request, version, exc)
        except CriterionError as exc:
            errors = forms.errors_by_field(exc.errors)
    if errors:
        if request.htmx:
            response = render(request, "rubrics/partials/criterion_form.html",
                              _form_context(version, crit, request.POST, errors, levels))
            return retarget(response, f"#crit-{crit.pk}")
        return render(request, "rubrics/editor.html", _editor_context(
            version, edit_key=key, edit_values=request.POST, edit_errors=errors, edit_levels=levels), status=400)
    return _editor_done(request, version)


def _form_context(version, crit, values, errors, levels) -> dict:
    return {"version": version, "rubric": version.rubric, "c": crit, "edit_values": values, "edit_errors": errors,
            "edit_levels": levels, "scales": forms.SCALES, "polarities": forms.POLARITIES, "kinds": forms.KINDS}


@login_required
@require_POST
def criterion_add_form(request, slug: str, number: int):
    """Re-render the add form after the scale or range changed (nothing is saved)."""
    version = get_version_to_change(request.user, slug, number)
    levels = forms.anchor_levels(request.POST.get("scale", "likert"), request.POST.get("min"), request.POST.get("max"))
    return render(request, "rubrics/partials/criterion_add.html", {
        "version": version, "rubric": version.rubric, "add_values": request.POST, "add_errors": {},
        "add_levels": levels, "scales": forms.SCALES, "polarities": forms.POLARITIES, "kinds": forms.KINDS,
    })


@login_required
@require_POST
def criterion_delete(request, slug: str, number: int, key: str):
    version = get_version_to_change(request.user, slug, number)
    crit = get_object_or_404(Criterion, version=version, key=key)
    try:
        services.criterion_delete(criterion=crit)
    except services.RubricVersionLocked as exc:
        return _locked(request, version, exc)
    return _editor_done(request, version)


@login_required
@require_POST
def criterion_move(request, slug: str, number: int, key: str):
    version = get_version_to_change(request.user, slug, number)
    keys = list(version.criteria.values_list("key", flat=True))
    if key not in keys:
        raise Http404("No such criterion.")
    i = keys.index(key)
    j = i - 1 if request.POST.get("direction") == "up" else i + 1
    if 0 <= j < len(keys):
        keys[i], keys[j] = keys[j], keys[i]
        try:
            services.criterion_reorder(version=version, keys=keys)
        except services.RubricVersionLocked as exc:
            return _locked(request, version, exc)
    return _editor_done(request, version)


# --- version lifecycle --------------------------------------------------------------------


@login_required
@require_POST
def version_publish(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    try:
        services.rubric_version_publish(version=version)
    except (services.RubricVersionLocked, ValueError) as exc:
        messages.error(request, str(exc))
        return redirect(_editor_url(version) if version.status == "draft" else version.get_absolute_url())
    messages.success(request, f"Published {version.rubric.name} v{version.number}. It can no longer change.")
    return redirect(version.get_absolute_url())


@login_required
@require_POST
def version_new_draft(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    changelog = request.POST.get("changelog", "").strip()
    draft = services.rubric_version_new_draft(version=version, changelog=changelog)
    messages.success(request, f"Draft v{draft.number} created from v{version.number}.")
    return redirect(_editor_url(draft))


@login_required
@require_POST
def version_discard(request, slug: str, number: int):
    version = get_version_to_change(request.user, slug, number)
    try:
        services.rubric_version_delete_draft(version=version)
    except services.RubricVersionLocked as exc:
        return _locked(request, version, exc)
    messages.success(request, f"Draft v{number} discarded.")
    if Rubric.objects.filter(slug=slug).exists():
        return redirect("rubric-detail", slug=slug)
    return redirect("rubric-list")


@login_required
@require_POST
def version_clone(request, slug: str, number: int):
    version = get_version_for(request.user, slug, number)
    name, new_slug = request.POST.get("name", "").strip(), request.POST.get("slug", "").strip()
    if not name or not new_slug or Rubric.objects.filter(slug=new_slug).exists() or new_slug.lower() != new_slug:
        messages.error(request, "Give the copy a name and a new, unused lowercase slug.")
        return redirect(version.get_absolute_url())
    clone = services.rubric_clone(version=version, name=name, slug=new_slug, created_by=request.user)
    messages.success(request, f"Cloned into {clone.rubric.name} (draft v1).")
    return redirect(_editor_url(clone))
