"""The Gradio dashboard in parts: a typed per-visitor `Session`, one error decorator, one module per tab.

`app.build_app` only wires the tabs together; every computation is a `cnl_core` call.
"""
