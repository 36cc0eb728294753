from django import forms

from core import config

# Form field -> configuration key. The rules live in core.config, not here.
FIELD_KEYS = {
    "mode": "redundancy.mode",
    "peer": "redundancy.peer",
    "failover_time": "redundancy.failover_time",
    "secret": "redundancy.secret",
}


class RedundancyForm(forms.Form):
    mode = forms.ChoiceField(
        label="Node type", choices=[(m, config.MODE_LABELS[m]) for m in config.MODES]
    )
    peer = forms.CharField(
        label="Peer node",
        required=False,
        help_text=config.KEYS["redundancy.peer"].help,
    )
    failover_time = forms.CharField(
        label="Failover time (s)",
        help_text=config.KEYS["redundancy.failover_time"].help,
    )
    secret = forms.CharField(
        label="Pairing secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the current secret. "
        + config.KEYS["redundancy.secret"].help,
    )

    save_unreachable = forms.BooleanField(
        label="Save even if the peer does not answer",
        required=False,
        help_text="The peer is tried before the address is saved; tick this to save an "
        "address that does not answer now (the other server is not installed yet).",
    )

    def __init__(self, *args, backup: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if backup:
            # The note sets the failover time on the master; a backup uses the master's.
            field = self.fields["failover_time"]
            field.disabled = True
            field.help_text = "Set on the master: the master's value applies to both servers."

    def changes(self) -> dict[str, str]:
        """The submitted values as configuration text by key; an empty secret is kept, and
        a field shown read-only is not a change."""
        data = self.cleaned_data
        changes = {
            key: data[name] for name, key in FIELD_KEYS.items() if not self.fields[name].disabled
        }
        if not changes["redundancy.secret"]:
            del changes["redundancy.secret"]
        return changes

    def add_config_errors(self, exc: config.ConfigError) -> None:
        by_key = {key: name for name, key in FIELD_KEYS.items()}
        for key, message in exc.errors.items():
            name = by_key.get(key)
            label = config.KEYS[key].label if key in config.KEYS else key
            self.add_error(name, f"{label}: {message}" if name is None else message)

    @staticmethod
    def initial_from(values: dict) -> dict:
        return {
            "mode": values["redundancy.mode"],
            "peer": values["redundancy.peer"],
            "failover_time": str(values["redundancy.failover_time"]),
        }
