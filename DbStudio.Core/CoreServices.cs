// Every service of DbStudio.Core, registered in one place: services.AddDbStudioCore() — the host (Web/Hosting) adds the
// platform database, Identity and HTTP around it. Options are bound by name from their configuration sections
// (DbStudio, DbStudio:Assistant, DbStudio:Login, DbStudio:Servers); nothing in Core reads a configuration key itself.
using DbStudio.Core.Access;
using DbStudio.Core.Assistant;
using DbStudio.Core.Auth;
using DbStudio.Core.Catalog;
using DbStudio.Core.Console;
using DbStudio.Core.Csv;
using DbStudio.Core.Limits;
using DbStudio.Core.Panel;
using DbStudio.Core.Platform;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.Schema;
using DbStudio.Core.Streams;
using Microsoft.Extensions.DependencyInjection;

namespace DbStudio.Core;

public static class CoreServices
{
    /// <summary>
    /// Core's services and options, and its hosted services (the connection guard, the platform listener and its routes,
    /// the stream's dispatcher and the other servers' listeners), which the host starts. Needs from the host: an
    /// NpgsqlDataSource for the platform database, an IDbContextFactory&lt;PlatformDbContext&gt; and Data Protection (Web's
    /// HostingExtensions.AddPlatformDatabase registers the three), IConfiguration for the options, and logging.
    /// Registers TimeProvider.System (tests replace it).
    /// </summary>
    public static IServiceCollection AddDbStudioCore(this IServiceCollection services)
    {
        services.AddOptions<DbStudioOptions>().BindConfiguration(DbStudioOptions.Section);
        services.AddOptions<AssistantOptions>().BindConfiguration(AssistantOptions.Section);
        services.AddOptions<LoginThrottleOptions>().BindConfiguration(LoginThrottleOptions.Section);
        // The PostgreSQL servers projects live on (default: only the platform's, "main").
        services.AddOptions<ServersOptions>().BindConfiguration(ServersOptions.Section);
        services.AddSingleton<ProjectServers>();
        services.AddSingleton(TimeProvider.System);

        // Platform metadata and the signals between instances
        services.AddSingleton<SecretProtector>();
        services.AddSingleton<PlatformSignals>();
        services.AddSingleton<DatabaseProbe>();
        services.AddSingleton<PlatformListener>();

        // Fair shares and projects. (Hosted services start in this order: the connection guard, the listener's routes
        // (SignalRouting), the listener, then the stream's dispatcher; they stop in reverse.)
        services.AddSingleton<PlatformLimits>();
        services.AddHostedService<ConnectionGuard>();
        services.AddHostedService<SignalRouting>();
        services.AddHostedService(sp => sp.GetRequiredService<PlatformListener>());
        // "main"'s pool; ServerPools makes one per other server, each with its own budget.
        services.AddSingleton(sp => new ProjectConnectionPool(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<DbStudioOptions>>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ProjectServers>().Platform.MaxConnections));
        services.AddSingleton<ServerPools>();
        services.AddSingleton<Servers.ProjectMover>();
        services.AddSingleton<ProjectLogins>();
        services.AddSingleton<ProjectGates>();
        services.AddSingleton<OwnerConnections>();
        services.AddSingleton<RestConnections>();
        services.AddScoped<ProjectService>();

        // Catalog, access, auth
        services.AddSingleton<SchemaCache>();
        services.AddSingleton<FunctionCatalog>();
        services.AddSingleton<AccessPolicies>();
        services.AddSingleton<HandWrittenPolicies>();
        services.AddSingleton<FunctionAccess>();
        services.AddSingleton<LoginThrottle>();
        services.AddSingleton<EndUserAuth>();
        services.AddSingleton<Credentials>();

        // REST and RPC
        services.AddSingleton<RestExecutor>();
        services.AddSingleton<RpcExecutor>();
        services.AddSingleton<RestMetrics>();

        // The live row stream (REST tells it of commits through ICommitObserver)
        services.AddSingleton<ChangeLog>();
        services.AddSingleton<ChangeCapture>();
        services.AddSingleton<StreamIds>();
        services.AddSingleton<StreamVisibility>();
        services.AddSingleton<ChangeHub>();
        services.AddSingleton<ICommitObserver>(sp => sp.GetRequiredService<ChangeHub>());
        services.AddHostedService(sp => sp.GetRequiredService<ChangeHub>());
        services.AddSingleton<ServerChangeListeners>(); // LISTEN on every other server
        services.AddHostedService(sp => sp.GetRequiredService<ServerChangeListeners>());

        // Console, schema, CSV, panel, assistant
        services.AddSingleton<SqlConsole>();
        services.AddSingleton<SqlHistory>();
        services.AddSingleton<AssistantSql>();
        services.AddSingleton<CsvTransfer>();
        services.AddSingleton<SchemaEditor>();
        services.AddSingleton<TableBrowser>();
        services.AddSingleton<References>();
        services.AddSingleton<ViewAsPolicies>();
        services.AddSingleton<ProjectOverview>();
        services.AddSingleton<AssistantChat>();
        services.AddSingleton<AssistantContext>();
        services.AddSingleton<Conversations>();
        return services;
    }
}
