// Core hosted by a test, as the app hosts it: services.AddDbStudioCore() plus what a host provides — Web's
// AddPlatformDatabase (the platform data source, EF contexts, Data Protection with the key ring in the platform database,
// so secrets the app encrypted read back), an app's configuration, logging — and Core's hosted services started and
// stopped. It is one more instance on the platform database beside the app, as the product runs several: the platform
// signals keep the two coherent. A service added to Core is picked up here with nothing to edit.
using DbStudio.Core;
using DbStudio.Web.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DbStudio.Tests.Infrastructure;

public static class CoreHost
{
    /// <summary>Core and its host's part, configured as <paramref name="config"/> (an app's own configuration) says.</summary>
    public static IServiceCollection AddCoreHost(this IServiceCollection services, IConfiguration config)
    {
        services.AddLogging();
        services.AddSingleton(config);
        services.AddPlatformDatabase(config.GetConnectionString("Platform")
            ?? throw new InvalidOperationException("ConnectionStrings:Platform is not set"), config);
        return services.AddDbStudioCore();
    }

    /// <summary>Starts the hosted services in their registration order (as the generic host does); returns them.</summary>
    public static async Task<IReadOnlyList<IHostedService>> StartAsync(IServiceProvider services, CancellationToken ct = default)
    {
        var started = new List<IHostedService>();
        foreach (var hosted in services.GetServices<IHostedService>())
        {
            await hosted.StartAsync(ct);
            started.Add(hosted);
        }
        return started;
    }

    /// <summary>Stops what <see cref="StartAsync"/> started, in reverse order.</summary>
    public static async Task StopAsync(IReadOnlyList<IHostedService> started, CancellationToken ct = default)
    {
        for (var i = started.Count - 1; i >= 0; i--) await started[i].StopAsync(ct);
    }
}
