"""The forms of Administration > Administrators."""

from django import forms
from django.contrib.auth import get_user_model

from accounts.models import ADMINISTRATOR, ROLES


def _password(label: str, autocomplete: str, required: bool = True) -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        required=required,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


class NewPasswordMixin:
    def clean(self):
        data = super().clean()
        if data.get("new_password") != data.get("new_password_again"):
            self.add_error("new_password_again", "the two new passwords differ")
        return data


class AdministratorAddForm(NewPasswordMixin, forms.Form):
    username = forms.CharField(label="User name", max_length=150)
    role = forms.ChoiceField(label="Role", choices=ROLES.items(), initial=ADMINISTRATOR)
    new_password = _password("Initial password", "new-password")
    new_password_again = _password("Initial password again", "new-password")
    password = _password("Your password", "current-password")

    field_order = ["username", "role", "new_password", "new_password_again", "password"]


ACTIONS = {
    "disable": "Disable (cannot log in)",
    "enable": "Enable",
    "administrator": "Make administrator",
    "operator": "Make operator",
    "reset": "Reset the password (changed at the next login)",
    "delete": "Delete",
}


class AdministratorChangeForm(NewPasswordMixin, forms.Form):
    username = forms.ChoiceField(label="Account")
    action = forms.ChoiceField(label="Change", choices=ACTIONS.items())
    new_password = _password("New password (for a reset)", "new-password", required=False)
    new_password_again = _password("New password again", "new-password", required=False)
    password = _password("Your password", "current-password")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = get_user_model().objects.order_by("username").values_list("username", flat=True)
        self.fields["username"].choices = [(name, name) for name in names]

    def clean(self):
        data = super().clean()
        if data.get("action") == "reset" and not data.get("new_password"):
            self.add_error("new_password", "a reset needs the new password")
        return data
