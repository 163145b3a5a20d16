// Encrypts project secrets at rest with ASP.NET Core Data Protection (key ring in the platform database).
using Microsoft.AspNetCore.DataProtection;

namespace DbStudio.Core.Projects;

public sealed class SecretProtector(IDataProtectionProvider provider)
{
    private readonly IDataProtector _protector = provider.CreateProtector("DbStudio.ProjectSecrets.v1");

    public string Protect(string secret) => _protector.Protect(secret);
    public string Unprotect(string protectedSecret) => _protector.Unprotect(protectedSecret);
}
