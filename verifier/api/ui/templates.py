"""The report pages' HTML: Jinja2 templates with autoescaping on, kept in this module (so the
package needs no data files), and ``render(name, **context)``.

Autoescaping is what keeps a job's label or an expression from becoming markup: every value
a template prints is escaped unless it is ``Markup`` (the charts, escaped in charts.py).
The pages use no script at all; the ``Content-Security-Policy`` of verifier/api/routes/ui.py
forbids any.
"""

from __future__ import annotations

import functools
import math
from datetime import datetime
from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

from verifier.api.ui.charts import colour
from verifier.ids import SHORT_ID_CHARS

BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% block title %}derivcheck{% endblock %} - derivcheck</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #212529; background: #fff; }
header { background: #1c2733; color: #fff; padding: 8px 20px; display: flex; gap: 18px;
  align-items: center; }
header a { color: #dbe4ee; text-decoration: none; } header a:hover { color: #fff; }
header .brand { font-weight: 700; color: #fff; }
header form { margin-left: auto; }
main { padding: 16px 20px; max-width: 1280px; }
h1 { font-size: 20px; margin: 4px 0 12px; } h2 { font-size: 16px; margin: 20px 0 8px; }
table { border-collapse: collapse; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid #dee2e6; padding: 4px 8px; text-align: left;
  vertical-align: top; }
th { background: #f1f3f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .expr { font-family: ui-monospace, monospace; background: #f1f3f5; padding: 1px 4px;
  border-radius: 3px; word-break: break-all; }
.verdict { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff;
  font-size: 12px; font-weight: 600; }
.filters { display: flex; flex-wrap: wrap; gap: 8px; align-items: end; margin-bottom: 10px; }
.filters label { display: flex; flex-direction: column; font-size: 12px; color: #495057; }
.problem { background: #fff3bf; border: 1px solid #f59f00; padding: 6px 10px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; } figcaption { font-size: 12px; color: #495057; }
svg.chart { background: #fff; border: 1px solid #dee2e6; max-width: 100%; height: auto; }
svg .axis { font-size: 12px; fill: #343a40; } svg .tick, svg .legend { font-size: 10px;
  fill: #495057; } svg .value { font-size: 11px; fill: #343a40; }
svg .cell { font-size: 11px; fill: #fff; font-weight: 600; }
svg .frame { fill: none; stroke: #adb5bd; } svg .grid { stroke: #e9ecef; }
svg .allowed { stroke: #212529; stroke-dasharray: 5 4; } svg .empty { fill: #f1f3f5; }
ul.legend { list-style: none; display: flex; flex-wrap: wrap; gap: 2px 14px; padding: 0;
  margin: 4px 0; max-width: 600px; font-size: 12px; color: #495057; }
ul.legend li { display: flex; align-items: center; gap: 4px; }
ul.legend .swatch { display: inline-block; width: 10px; height: 10px; }
ul.legend .marker { font-size: 14px; line-height: 1; }
.pager a { margin-right: 12px; }
.muted { color: #868e96; }
</style></head>
<body>
<header><a class="brand" href="/ui/">derivcheck</a><a href="/ui/">Jobs</a>
<a href="/ui/stats">Stats</a>
{% if signed_in %}<form method="post" action="/ui/logout" id="logout">
<input type="hidden" name="csrf_token" value="{{ sign_out_token }}">
<button type="submit">Sign out</button></form>{% endif %}</header>
<main>{% block main %}{% endblock %}</main>
</body></html>
"""

MACROS = """
{% macro verdict(name) -%}
{% if name %}<span class="verdict verdict-{{ name }}" style="background: {{ name | colour }}">
{{- name }}</span>{% else %}<span class="muted">-</span>{% endif %}
{%- endmacro %}
{% macro counts(values) -%}
{% for name, count in values.items() %}{{ verdict(name) }} {{ count }}{% if not loop.last %},
{% endif %}{% endfor %}
{%- endmacro %}
"""

LOGIN = """{% extends "base.html" %}{% block title %}Sign in{% endblock %}
{% block main %}<h1>Sign in</h1>
<p>Reports are shown to the API key that submitted them. Enter your key (from
<code>derivcheck keys create NAME</code>); this site keeps a sign-in for it in an HTTP-only
cookie, never the key itself, until you sign out.</p>
{% if problem %}<p class="problem" id="problem">{{ problem }}</p>{% endif %}
<form method="post" action="/ui/login" id="login">
<input type="hidden" name="csrf_token" value="{{ csrf_token }}">
<label>API key <input type="password" name="api_key" id="api_key" autocomplete="off" required>
</label> <button type="submit">Sign in</button></form>
{% endblock %}
"""

JOBS = """{% extends "base.html" %}{% import "macros.html" as m %}
{% block title %}Jobs{% endblock %}
{% block main %}<h1>Jobs</h1>
<form class="filters" method="get" action="/ui/" id="filters">
<label>verdict <select name="verdict"><option value="">any</option>
{% for name in verdicts %}<option value="{{ name }}"{% if filters.verdict == name %} selected
{% endif %}>{{ name }}</option>{% endfor %}</select></label>
<label>function <input name="function" value="{{ filters.function or '' }}" size="10"></label>
<label>dtype <select name="dtype"><option value="">any</option>
{% for name in dtypes %}<option value="{{ name }}"{% if filters.dtype == name %} selected
{% endif %}>{{ name }}</option>{% endfor %}</select></label>
<label>device <input name="device" value="{{ filters.device or '' }}" size="8"></label>
<label>expression contains <input name="expression" value="{{ filters.expression or '' }}"
size="18"></label>
<label>from <input type="date" name="since" value="{{ since }}"></label>
<label>to (inclusive) <input type="date" name="until" value="{{ until }}"></label>
<button type="submit">Filter</button> <a href="/ui/">clear</a></form>
{% if problem %}<p class="problem" id="problem">{{ problem }}</p>{% endif %}
<table id="jobs"><thead><tr><th>id</th><th>submitted (UTC)</th><th>label</th><th>status</th>
<th>progress</th><th>verdict</th><th>checks by verdict</th></tr></thead><tbody>
{% for row in listing.jobs %}<tr class="job" data-job="{{ row.job.id }}">
<td><a class="job-id" href="/ui/jobs/{{ row.job.id }}" title="{{ row.job.id }}"><code>
{{- (row.job.id | string)[:SHORT_ID_CHARS] }}</code></a></td>
<td><a href="/ui/jobs/{{ row.job.id }}">{{ row.job.created_at | when }}</a></td>
<td class="label">{{ row.job.label or '' }}</td><td>{{ row.job.status }}</td>
<td>{% if row.job.status in ('queued', 'running') %}<progress max="{{ row.job.check_count }}"
value="{{ row.done }}"></progress> {% endif %}{{ row.done }} / {{ row.job.check_count }}</td>
<td>{{ m.verdict(row.job.verdict) }}</td><td>{{ m.counts(row.counts) }}</td></tr>
{% else %}<tr><td colspan="7" class="muted" id="no-jobs">no jobs</td></tr>{% endfor %}
</tbody></table>
<p class="pager">{% if listing.page > 0 %}<a rel="prev" href="{{ prev_url }}">newer</a>{% endif %}
{% if listing.has_next %}<a rel="next" href="{{ next_url }}">older</a>{% endif %}
page {{ listing.page + 1 }}</p>
{% endblock %}
"""

JOB = """{% extends "base.html" %}{% import "macros.html" as m %}
{% block title %}Job {{ job.id }}{% endblock %}
{% block main %}<h1>Job <code>{{ job.id }}</code></h1>
<table id="job"><tr><th>label</th><td class="label">{{ job.label or '' }}</td></tr>
<tr><th>status</th><td>{{ job.status }}</td></tr>
<tr><th>verdict</th><td>{{ m.verdict(job.verdict) }}{% if job.passed is not none %}
({{ 'passed' if job.passed else 'failed' }} its checks' fail-on){% endif %}</td></tr>
<tr><th>progress</th><td>{{ job.progress.done }} / {{ job.progress.total }} checks</td></tr>
<tr><th>submitted</th><td>{{ job.created_at | when }}</td></tr>
<tr><th>finished</th><td>{{ job.finished_at | when }}</td></tr></table>
<figure id="verdict-chart">{{ chart }}<figcaption>checks by verdict</figcaption></figure>
<h2>Checks</h2>
<table id="checks"><thead><tr><th>#</th><th>expression</th><th>dtype</th><th>device</th>
<th>status</th><th>verdict</th><th>worst err/allowed (ulps)</th><th>entries by verdict</th>
<th>time (s)</th>
</tr></thead><tbody>
{% for check in checks %}<tr class="check" data-check="{{ check.id }}">
<td>{{ check.position }}</td>
<td><a class="expr" href="/ui/checks/{{ check.id }}">{{ check.expression | short }}</a></td>
<td>{{ check.dtype }}</td><td>{{ check.ran_on or check.device }}</td><td>{{ check.status }}</td>
<td>{{ m.verdict(check.verdict) }}{% if check.reason %} <span class="muted">{{ check.reason }}
</span>{% endif %}</td><td class="num ratio">{{ check.worst_ratio | num }}
{% if check.worst_ulp_error is not none %}<span class="muted">({{ check.worst_ulp_error | num }}
ulps)</span>{% endif %}</td>
<td>{{ m.counts(check.counts or {}) }}</td><td class="num">{{ check.total_seconds | num }}</td>
</tr>{% endfor %}</tbody></table>
{% if blamed %}<h2>Blamed operations</h2>
<p class="muted">Summed over the checks listed above: entries of each verdict that blame the
node, and the checks (#) they are in.</p>
<table id="blamed"><thead><tr><th>node</th><th>phase</th><th>verdict</th><th>entries</th>
<th>checks</th></tr></thead><tbody>{% for row in blamed %}<tr class="blamed">
<td><code>{{ row.node }}</code></td><td>{{ row.phase }}</td><td>{{ m.verdict(row.verdict) }}</td>
<td class="num">{{ row.entries }}</td><td>{{ row.checks | join(', ') }}</td></tr>{% endfor %}
</tbody></table>{% endif %}
<p class="pager">{% if page > 0 %}<a rel="prev" href="?page={{ page - 1 }}">previous checks</a>
{% endif %}{% if has_next %}<a rel="next" href="?page={{ page + 1 }}">next checks</a>{% endif %}
</p>
<p><a href="/jobs/{{ job.id }}/report">this job's report as JSON</a></p>
{% endblock %}
"""

CHECK = """{% extends "base.html" %}{% import "macros.html" as m %}
{% block title %}Check {{ options.position }} of job {{ options.job_id }}{% endblock %}
{% block main %}<h1>Check {{ options.position }} of job
<a href="/ui/jobs/{{ options.job_id }}"><code>{{ options.job_id }}</code></a></h1>
<p>Expression: <code class="expr" id="expression">{{ options.expression }}</code></p>
<table id="options">
<tr><th>verdict</th><td>{{ m.verdict(options.verdict) }}{% if options.reason %}
<span id="reason">{{ options.reason }}</span>{% endif %}
{% if document.passed is not none %} ({{ 'passed' if document.passed else 'failed' }}
fail-on {{ (document.fail_on or []) | join(', ') }}){% endif %}</td></tr>
<tr><th>entries by verdict</th><td>{{ m.counts(document.counts or {}) }}</td></tr>
<tr><th>dtype</th><td>{{ options.dtype }}</td></tr>
<tr><th>device</th><td>asked {{ options.device }}{% if options.ran_on %}, ran on
{{ options.ran_on }}{% endif %}</td></tr>
{% if document.compared %}{% set compared = document.compared %}<tr id="compared">
<th>compared with</th><td>{{ compared.device }}: {{ m.verdict(compared.verdict) }}
({{ 'passed' if compared.passed else 'failed' }}), {{ m.counts(compared.counts or {}) }};
{{ compared.differing }} values differ (largest |difference|
{{ compared.max_abs_difference | num }}), verdicts differ on {{ compared.verdicts_differ }}
</td></tr>{% endif %}
<tr><th>tolerance</th><td>{% if document.tolerance %}rtol {{ document.tolerance.rtol | num }},
atol {{ document.tolerance.atol | num }}{% if document.tolerance.ulps is defined %},
{{ document.tolerance.ulps | num }} ulps{% endif %}{% else %}the dtype's default{% endif %}
</td></tr>
<tr><th>reference</th><td>{{ document.reference_method or '-' }}</td></tr>
<tr><th>points</th><td>{{ (document.points or []) | length }}{% if options.samples %}
(samples {{ options.samples }}, seed {{ options.seed }}{% if options.domain %}, domain
{% for name, span in options.domain.items() %}{{ name }} in [{{ span[0] }}, {{ span[1] }}]
{% if not loop.last %}, {% endif %}{% endfor %}{% endif %}){% endif %}</td></tr>
<tr><th>derivatives</th><td>gradient{% if options.hessian %}, Hessian{% endif %}
{% if options.nodes %}, node gradients{% endif %}</td></tr>
<tr><th>status</th><td>{{ options.status }} (attempts {{ options.attempts }})</td></tr>
<tr><th>time</th><td>{{ options.total_seconds | num }} s</td></tr>
{% if document.versions %}<tr><th>versions</th><td>{% for name, value in
document.versions.items() %}{{ name }} {{ value }}{% if not loop.last %}, {% endif %}
{% endfor %}</td></tr>{% endif %}
</table>
{% if document.paths %}<h2>Derivative paths</h2><p>Each further path judged against the same
exact values; "differ" counts the values it computes differently from the default path of its
order.</p><table id="paths"><tr><th>mode</th><th>verdict</th><th>entries</th><th>differ</th>
<th>largest |difference|</th><th>worst entry or refusal</th></tr>{% for path in document.paths %}
<tr><td><code>{{ path.mode }}</code>{% if path.batched is false %}, point by point{% endif %}
</td><td>{{ m.verdict(path.verdict) }}</td>
<td>{{ m.counts(path.counts or {}) }}</td><td class="num">{{ path.differing if path.differing
is not none else '-' }}</td><td class="num">{{ path.max_abs_difference | num }}</td>
<td>{% if path.error %}{{ path.error }}{% elif path.entries %}{% set e = path.entries[0] %}
{{ e.kind }}[{{ (e.wrt or []) | join(',') }}] at point {{ e.point }}: {{ e.detail or '' }}
{% endif %}</td></tr>{% endfor %}</table>{% endif %}
{% if document.blamed %}<h2>Blamed operations</h2><table id="blamed"><tr><th>verdict</th>
<th>node</th><th>phase</th><th>entries</th></tr>{% for row in document.blamed %}<tr>
<td>{{ m.verdict(row.verdict) }}</td><td><code>{{ row.node }}</code></td><td>{{ row.phase }}</td>
<td class="num">{{ row.entries }}</td></tr>{% endfor %}</table>{% endif %}
{% if page.entries_total %}
<p id="sample" class="{{ 'problem' if page.sampled else 'muted' }}">This report holds
<strong id="entries-total">{{ page.entries_total | thousands }}</strong> entries
({{ page.failing_total | thousands }} not passing) in {{ page.blocks_total | thousands }} stored
blocks.{% if page.sampled %} This page read <span id="entries-read">{{ page.entries_read |
thousands }}</span> of them ({{ page.blocks_read }} blocks): the first ones and the blocks with
the most entries that do not pass. The plots, the histogram, the Hessian matrix and the worst
entries below are of these only. For every entry, read
<a id="every-entry" href="{{ page.every_entry_url }}">the JSON report</a> a page at a time, or
<a id="failing-entries" href="{{ page.failing_entries_url }}">only its entries that do not
pass</a>, and follow each page's <code>next_cursor</code> (the pages go on into the job's next
checks; <code>GET /jobs/{id}/report?entries=all|failing&amp;limit=&amp;cursor=</code>).{% endif %}
</p>{% endif %}
{% if problem %}<p class="problem" id="problem">{{ problem }}</p>{% endif %}
{% if page.entries_read %}
<h2>Plots</h2>
<p class="muted">Error in ulps of {{ options.dtype }} (log scale) of every entry read against
{% if page.plotted | length < page.variables_total %}the first {{ page.plotted | length }} of
the {{ page.variables_total }} input variables{% else %}each input variable{% endif %}
(a linear axis, or a logarithmic one through the link under its plot where every value is
above 0), coloured by verdict, shaped by kind (gradient: circle, Hessian: square, others: triangle)
{%- if page.unplotted %}; {{ page.unplotted }} entries have no error in ulps
(the exact value is 0 or unknown) and are not drawn{% endif %}.</p>
<div class="charts" id="plots">
{% for name, svg, legend, csv_url, switch in scatters %}<figure class="scatter"
data-variable="{{ name }}">{{ svg }}{{ legend }}<figcaption>error vs <code>{{ name }}</code>
(<a class="csv" href="{{ csv_url }}">its points as CSV</a>;
{% if switch.url %}<a class="xscale" href="{{ switch.url }}">{{ switch.text }}</a>{% else %}
<span class="xscale muted">{{ switch.text }}</span>{% endif %})</figcaption></figure>
{% endfor %}
<figure id="histogram">{{ histogram }}<figcaption>errors by decade of ulps</figcaption></figure>
{% if hessian %}<figure id="hessian">{{ hessian }}<figcaption>worst error (ulps) of each
Hessian element over the points{% if page.hessian_variables | length < page.variables_total %}
(the first {{ page.hessian_variables | length }} variables){% endif %}</figcaption></figure>
{% endif %}
</div>
<h2>Entries, worst first</h2>
<p class="muted">The {{ page.worst | length }} worst of the {{ page.entries_read | thousands }}
entries read.</p>
<table id="entries"><thead><tr><th>verdict</th><th>kind</th><th>of</th><th>point</th>
<th>autograd</th><th>exact</th><th>ulps</th><th>error / allowed</th><th>correct bits</th>
<th>blame</th><th>detail</th>{% if document.compared %}<th>on {{ document.compared.device }}
</th><th>verdict there</th><th>difference</th>{% endif %}</tr></thead><tbody>
{% for entry in page.worst %}<tr class="entry" data-verdict="{{ entry.verdict }}">
<td>{{ m.verdict(entry.verdict) }}</td><td>{{ entry.kind }}</td>
<td>{% if entry.node %}<code>{{ entry.node }}</code>{% else %}{{ (entry.wrt or []) | join(', ')
}}{% endif %}</td><td>{{ point_text(entry.point) }}</td>
<td class="num">{{ entry.autograd | num }}</td><td class="num">{{ entry.reference | num }}</td>
<td class="num">{{ entry.ulp_error | num }}</td><td class="num">{{ entry.ratio | num }}</td>
<td class="num">{{ entry.correct_bits | num }}</td>
<td>{% if entry.blame %}<code>{{ entry.blame }}</code> {{ entry.phase or '' }}{% endif %}</td>
<td>{{ entry.detail or '' }}</td>{% if document.compared %}
<td class="num">{{ entry.compared_autograd | num }}</td>
<td>{{ m.verdict(entry.compared_verdict) if entry.compared_verdict else '' }}</td>
<td class="num">{{ entry.device_difference | num }}</td>{% endif %}</tr>{% endfor %}
</tbody></table>
{% if reproduce %}<h2>Reproduce a point</h2>
<p class="muted">Each point of the table above, checked again on its own by the command line
(its values print back as the same floats):</p>
<ul id="reproduce">{% for text, command in reproduce %}<li>{{ text }}:
<code class="reproduce">{{ command }}</code></li>{% endfor %}</ul>{% endif %}
{% endif %}
{% if document.notes %}<h2>Notes</h2><ul>{% for note in document.notes %}<li>{{ note }}</li>
{% endfor %}</ul>{% endif %}
{% endblock %}
"""

STATS = """{% extends "base.html" %}{% import "macros.html" as m %}
{% block title %}Stats{% endblock %}
{% block main %}<h1>Verdicts of your reports</h1>
<p>{{ by_dtype.total }} reports: {{ m.counts(by_dtype.counts) }}</p>
<h2>By dtype</h2><figure id="by-dtype">{{ dtype_chart }}{{ legend }}</figure>
<h2>By function</h2><figure id="by-function">{{ function_chart }}{{ legend }}</figure>
<table id="functions"><tr><th>function</th><th>reports</th><th>by verdict</th></tr>
{% for group in by_function.groups %}<tr><td>{{ group.key or '(none)' }}</td>
<td class="num">{{ group.total }}</td><td>{{ m.counts(group.counts) }}</td></tr>{% endfor %}
</table>
{% endblock %}
"""

NOT_FOUND = """{% extends "base.html" %}{% block title %}Not found{% endblock %}
{% block main %}<h1>Not found</h1><p id="problem">{{ problem }}</p>
<p><a href="/ui/">your jobs</a></p>{% endblock %}
"""

REFUSED = """{% extends "base.html" %}{% block title %}Refused{% endblock %}
{% block main %}<h1>Refused</h1><p class="problem" id="problem">{{ problem }}</p>
<p>Forms of these pages are accepted only from this site's own pages.
<a href="/ui/login">Sign in here</a>.</p>{% endblock %}
"""

TEMPLATES = {
    "base.html": BASE,
    "macros.html": MACROS,
    "login.html": LOGIN,
    "jobs.html": JOBS,
    "job.html": JOB,
    "check.html": CHECK,
    "stats.html": STATS,
    "not_found.html": NOT_FOUND,
    "refused.html": REFUSED,
}
MAX_SHORT_EXPRESSION_CHARS = 120


def _number(value: Any) -> str:
    """A report's number for a table: 4 significant digits, non-finite as text, '-' for none."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


def _thousands(value: int) -> str:
    """A count with its thousands separated: 1,121,000."""
    return f"{value:,}"


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _short(text: str) -> str:
    if len(text) <= MAX_SHORT_EXPRESSION_CHARS:
        return text
    return text[: MAX_SHORT_EXPRESSION_CHARS - 3] + "..."


def make_environment() -> Environment:
    """The templates' environment, every value autoescaped (a report's missing key prints
    as nothing: reports of older versions lack some)."""
    environment = Environment(
        loader=DictLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    environment.globals["SHORT_ID_CHARS"] = SHORT_ID_CHARS
    environment.filters.update(
        num=_number, when=_when, short=_short, colour=colour, thousands=_thousands
    )
    return environment


@functools.cache
def environment() -> Environment:
    """The one environment of the process, made on first use."""
    return make_environment()


def render(name: str, **context: Any) -> str:
    """The page ``name`` with ``context``."""
    return environment().get_template(name).render(**context)
