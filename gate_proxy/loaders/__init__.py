"""Everything that reads configuration files: YAML text -> the pure models of
``gate_proxy.core``, with errors that name file, line and field.

- ``yaml_reader``: the one located YAML reader (plain data + the line of every field)
- ``policy_file`` / ``policy_fields``: policy files -> ``core.policy.Policy``
- ``registry_file``: config/destinations.yaml -> ``core.registry.Registry``
- ``settings_file``: gate.yaml, environment and flags -> ``gate_proxy.settings.Settings``
- ``reload``: hot reload of one file set, keeping the last good version
- ``snapshot``: one immutable ``ConfigSnapshot`` of every part, swapped on reload

(The vault config reader, ``gate_proxy.vault.config``, uses ``yaml_reader`` too.)
"""
