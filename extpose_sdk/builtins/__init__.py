"""Built-in plugins: the SDK's own components, registered through the public hooks.

Each module here is a plugin like any third party's; ``extpose_sdk.plugins.DEFAULT_PLUGINS`` lists
them. They import nothing heavy: factories are ``lazy("module:attribute")``.
"""
