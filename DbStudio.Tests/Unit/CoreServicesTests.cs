// services.AddDbStudioCore() plus what a host provides (CoreHost: Web's AddPlatformDatabase, configuration, logging) is
// enough: every service type Core registers resolves, with the container validating each registration on build and
// that no singleton holds a scoped service. A missing registration fails here, not in a running app. No database: nothing
// connects while the services are built.
using DbStudio.Core;
using DbStudio.Core.Platform;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace DbStudio.Tests.Unit;

public class CoreServicesTests
{
    private static IConfiguration Config() => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["ConnectionStrings:Platform"] = "Host=127.0.0.1;Port=1;Username=nobody;Database=nowhere", // never opened
    }).Build();

    [Fact]
    public async Task Every_service_core_registers_resolves_with_what_a_host_provides()
    {
        var registered = new ServiceCollection().AddDbStudioCore()
            .Select(d => d.ServiceType).Where(t => !t.IsGenericTypeDefinition).Distinct().ToList();
        Assert.Contains(typeof(Core.Panel.TableBrowser), registered);

        await using var provider = new ServiceCollection().AddCoreHost(Config())
            .BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        await using var scope = provider.CreateAsyncScope();
        foreach (var type in registered)
            Assert.True(scope.ServiceProvider.GetServices(type).Any(s => s is not null), $"{type} does not resolve");

        // Each options class binds from its section (defaults without one).
        var options = registered.Where(t => t.IsGenericType && t.GetGenericTypeDefinition() == typeof(IConfigureOptions<>))
            .Select(t => t.GetGenericArguments()[0]).ToList();
        Assert.Contains(typeof(DbStudioOptions), options);
        foreach (var type in options)
        {
            var optionsOf = typeof(IOptions<>).MakeGenericType(type);
            Assert.NotNull(optionsOf.GetProperty(nameof(IOptions<object>.Value))!.GetValue(scope.ServiceProvider.GetRequiredService(optionsOf)));
        }
    }

    [Fact]
    public async Task The_listeners_routes_are_in_place_before_it_listens()
    {
        await using var provider = new ServiceCollection().AddCoreHost(Config()).BuildServiceProvider();
        var hosted = provider.GetServices<IHostedService>().Select(h => h.GetType()).ToList();
        var routes = hosted.IndexOf(typeof(SignalRouting));
        Assert.InRange(routes, 0, hosted.IndexOf(typeof(PlatformListener)) - 1);
    }

    [Fact]
    public async Task The_key_ring_is_encrypted_with_the_certificate_in_DataProtection_CertificatePath()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=dbstudio-test", rsa,
            System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var path = Path.Combine(Path.GetTempPath(), $"dbstudio-dp-{Guid.NewGuid():N}.pfx");
        await File.WriteAllBytesAsync(path, cert.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx, "pfx password"));
        try
        {
            var config = new ConfigurationBuilder().AddConfiguration(Config()).AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["DataProtection:CertificatePath"] = path,
                ["DataProtection:CertificatePassword"] = "pfx password",
            }).Build();
            await using var provider = new ServiceCollection().AddCoreHost(config).BuildServiceProvider();
            var keys = provider.GetRequiredService<IOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>>().Value;
            Assert.IsType<Microsoft.AspNetCore.DataProtection.XmlEncryption.CertificateXmlEncryptor>(keys.XmlEncryptor);

            await using var plain = new ServiceCollection().AddCoreHost(Config()).BuildServiceProvider();
            Assert.Null(plain.GetRequiredService<IOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>>().Value.XmlEncryptor);
        }
        finally { File.Delete(path); }
    }
}
