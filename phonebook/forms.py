from django import forms

from core import config as core_config
from phonebook import config

# Form field -> configuration key. The rules live in phonebook.config and services.
FIELD_KEYS = {
    "source": config.SOURCE_KEY,
    "ldap_url": config.LDAP_URL_KEY,
    "base_dn": config.BASE_DN_KEY,
    "bind_dn": config.BIND_DN_KEY,
    "bind_password": config.BIND_PASSWORD_KEY,
    "filter": config.FILTER_KEY,
    "name_attribute": config.NAME_ATTRIBUTE_KEY,
    "number_attribute": config.NUMBER_ATTRIBUTE_KEY,
}


WIDE = forms.TextInput(attrs={"size": 56})


def _help(name: str) -> str:
    return core_config.KEYS[FIELD_KEYS[name]].help


class PhonebookForm(forms.Form):
    source = forms.ChoiceField(
        label="Source", choices=list(config.SOURCE_LABELS.items()), help_text=_help("source")
    )
    ldap_url = forms.CharField(
        label="LDAP server", required=False, widget=WIDE, help_text=_help("ldap_url")
    )
    base_dn = forms.CharField(
        label="Base DN", required=False, widget=WIDE, help_text=_help("base_dn")
    )
    bind_dn = forms.CharField(
        label="Bind DN", required=False, widget=WIDE, help_text=_help("bind_dn")
    )
    bind_password = forms.CharField(
        label="Bind password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the current password.",
    )
    clear_password = forms.BooleanField(label="Remove the bind password", required=False)
    filter = forms.CharField(
        label="Search filter", required=False, widget=WIDE, help_text=_help("filter")
    )
    name_attribute = forms.CharField(label="Name attribute", help_text=_help("name_attribute"))
    number_attribute = forms.CharField(
        label="Number attribute", help_text=_help("number_attribute")
    )

    def changes(self) -> dict[str, str]:
        """The submitted values as configuration text by key; an empty password is kept
        unless its removal is ticked."""
        data = self.cleaned_data
        changes = {key: data[name] for name, key in FIELD_KEYS.items()}
        if data.get("clear_password"):
            changes[config.BIND_PASSWORD_KEY] = ""
        elif not changes[config.BIND_PASSWORD_KEY]:
            del changes[config.BIND_PASSWORD_KEY]
        return changes

    def add_config_errors(self, exc: core_config.ConfigError) -> None:
        by_key = {key: name for name, key in FIELD_KEYS.items()}
        for key, message in exc.errors.items():
            name = by_key.get(key)
            label = core_config.KEYS[key].label if key in core_config.KEYS else key
            self.add_error(name, message if name else f"{label}: {message}")

    @staticmethod
    def initial_from(values: dict) -> dict:
        return {name: values[key] for name, key in FIELD_KEYS.items() if name != "bind_password"}


class CsvUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="Rows of name,number; UTF-8.")


class SearchForm(forms.Form):
    q = forms.CharField(label="Search", max_length=32, required=False)
