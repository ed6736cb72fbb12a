"""Drop repeated inline scripts from the pages.

sphinx-thebe 0.3 (loaded by Jupyter Book 1 whether Thebe is used or not) adds its inline
configuration script both to the registry (filename None) and to the builder (filename ""), so
Sphinx does not see the two as one: the second ``const THEBE_JS_URL = ...`` is a JavaScript
error on every page. The first
copy of each script is kept, in its place.
"""


def _unique_scripts(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for script in context.get("script_files", []):
        # the copies differ only in filename None or "" (added before and after the builder)
        key = (getattr(script, "filename", script) or "", getattr(script, "priority", None),
               repr(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", _unique_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
