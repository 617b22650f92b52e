"""Settings: `table` declares every environment key once; `values` reads them into one `Settings`.

The environment reader (`Settings.from_env`, `load`) and `chatservice --help` both come from
`table.ENV_VARS`, and README's settings table is checked against it (tests/unit/test_settings_table.py).
"""

from gateways.settings.parse import SettingsError
from gateways.settings.table import BY_KEY, ENV_VARS, EnvVar
from gateways.settings.values import Settings, is_loopback, load, read_dotenv

__all__ = ["BY_KEY", "ENV_VARS", "EnvVar", "Settings", "SettingsError", "is_loopback", "load", "read_dotenv"]
