"""The forms of Administration > Backup and restore."""

from django import forms

from core.backupfile import PASSPHRASE_MIN_LENGTH

# A backup of 10,000 users is a few MB; a file far beyond that is not one of ours.
UPLOAD_MAX_BYTES = 64 * 1024 * 1024


class BackupDownloadForm(forms.Form):
    include_secrets = forms.BooleanField(
        label="Include secrets",
        required=False,
        help_text="SIP passwords, password hashes, the device and pairing secrets. The file is "
        "then protected by a passphrase; without secrets a restore keeps this server's own.",
    )
    passphrase = forms.CharField(
        label="Passphrase",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=f"At least {PASSPHRASE_MIN_LENGTH} characters; needed to restore the file.",
    )
    passphrase_again = forms.CharField(
        label="Passphrase again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        data = super().clean()
        if data.get("include_secrets"):
            passphrase = data.get("passphrase", "")
            if len(passphrase) < PASSPHRASE_MIN_LENGTH:
                self.add_error(
                    "passphrase",
                    f"a file with secrets needs a passphrase of at least "
                    f"{PASSPHRASE_MIN_LENGTH} characters",
                )
            elif passphrase != data.get("passphrase_again", ""):
                self.add_error("passphrase_again", "the two passphrases differ: type it twice")
        return data


class RestoreUploadForm(forms.Form):
    file = forms.FileField(label="Backup file")
    passphrase = forms.CharField(
        label="Passphrase",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Only for a file with secrets.",
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > UPLOAD_MAX_BYTES:
            raise forms.ValidationError(
                f"the file is larger than {UPLOAD_MAX_BYTES // (1024 * 1024)} MB: not a backup file"
            )
        return upload
