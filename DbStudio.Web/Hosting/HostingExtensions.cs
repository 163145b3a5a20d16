// Service registration and the request pipeline, so Program.cs stays a few lines.
using System.Threading.RateLimiting;
using DbStudio.Core;
using DbStudio.Core.Platform;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using OpenTelemetry;
using DbStudio.Core.Postgres;
using DbStudio.Core.Projects;
using DbStudio.Core.Rest;
using DbStudio.Core.RateLimiting;
using DbStudio.Web.Apis;
using DbStudio.Web.Apis.Supabase;
using DbStudio.Web.Components;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using MudBlazor.Services;
using Npgsql;

namespace DbStudio.Web.Hosting;

public static class HostingExtensions
{
    /// <summary>The largest message the browser may send the Blazor circuit (a UI event and its value).</summary>
    public const long BrowserMessageBytes = 4 * 1024 * 1024;

    public static async Task AddDbStudioAsync(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        var config = builder.Configuration;

        var connectionString = config.GetConnectionString("Platform");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            // The host's logging is not built yet: a console logger of its own, configured as the host's will be.
            using var loggerFactory = LoggerFactory.Create(l => l.AddConfiguration(config.GetSection("Logging")).AddConsole());
            var embedded = config.GetSection(EmbeddedOptions.Section).Get<EmbeddedOptions>() ?? new EmbeddedOptions();
            var (cluster, cs) = await EmbeddedPostgres.StartAsync(embedded, loggerFactory.CreateLogger("DbStudio.Embedded"));
            services.AddSingleton(cluster);
            services.AddHostedService<EmbeddedClusterStopper>();
            connectionString = cs;
        }

        services.AddPlatformDatabase(connectionString, config);
        services.AddAuthorization();
        services.AddIdentityApiEndpoints<PlatformUser>(o =>
            {
                o.Password.RequiredLength = 8;
                o.Password.RequireNonAlphanumeric = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireLowercase = false;
                o.Password.RequireDigit = false;
                o.User.RequireUniqueEmail = true;
                o.SignIn.RequireConfirmedAccount = config.GetValue("Identity:RequireConfirmedAccount", false);
            })
            .AddEntityFrameworkStores<PlatformDbContext>();

        services.AddDbStudioCore();
        services.AddHostedService<FunctionDefaultsStartup>();

        // Browser apps call the REST API directly from any origin; the keys, not the origin, are the security.
        services.AddCors(o => o.AddPolicy(RestApi.CorsPolicy, p => p.AllowAnyOrigin().AllowAnyMethod().AllowAnyHeader()
            .WithExposedHeaders("Content-Range", "Content-Location", "Preference-Applied", "Retry-After", GoTrueApi.ApiVersionHeader)
            .SetPreflightMaxAge(TimeSpan.FromHours(1))));
        // Read once at start, bound by name as every DbStudio setting (DbStudio:Auth, DbStudio:Rest).
        var limits = config.GetSection(DbStudioOptions.Section).Get<DbStudioOptions>() ?? new DbStudioOptions();
        var authPerMinute = limits.Auth.AttemptsPerMinute;
        // Every limiter reads the time from the TimeProvider registered above (DbStudio.Core.RateLimiting), so tests
        // advance a fake clock instead of racing the real one, and Retry-After is the real time until a permit frees up.
        static TimeProvider Clock(HttpContext ctx) => ctx.RequestServices.GetRequiredService<TimeProvider>();
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(EndUserAuthApi.RateLimitPolicy, ctx => RateLimitPartition.Get(
                $"{ctx.Connection.RemoteIpAddress}|{ctx.Request.RouteValues["id"]}",
                _ => new ClockSlidingWindow(Clock(ctx), authPerMinute, TimeSpan.FromMinutes(1))));
            // REST and streams: a token bucket per client address and one per credential (ANON key, DB_API_KEY or
            // session token), both per second; 0 turns one off.
            var perIp = limits.Rest.RequestsPerSecondPerIp;
            var perKey = limits.Rest.RequestsPerSecondPerKey;
            static bool IsRest(HttpContext ctx) => ctx.Request.Path.StartsWithSegments("/db");
            static RateLimiter Bucket(HttpContext ctx, int perSecond) => new ClockTokenBucket(Clock(ctx), perSecond, perSecond, TimeSpan.FromSeconds(1));
            o.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(ctx => perIp > 0 && IsRest(ctx)
                ? RateLimitPartition.Get($"ip:{ctx.Connection.RemoteIpAddress}", _ => Bucket(ctx, perIp))
                : RateLimitPartition.GetNoLimiter(""));
            o.AddPolicy(RestApi.RateLimitPolicy, ctx => perKey > 0 && CredentialOf(ctx) is { } key
                ? RateLimitPartition.Get($"key:{key}", _ => Bucket(ctx, perKey))
                : RateLimitPartition.GetNoLimiter(""));
            o.OnRejected = async (context, ct) =>
            {
                var retry = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
                var seconds = Math.Max(1, (int)Math.Ceiling(retry.TotalSeconds));
                context.HttpContext.Response.Headers.RetryAfter = seconds.ToString();
                await context.HttpContext.Response.WriteAsJsonAsync(new RestError("429", "Too many requests; try again later", null,
                    $"Retry after {seconds} s"), ct);
            };
        });

        // No secret in the logs: ASP.NET Core's "Request starting/finished" lines carry the query string, where
        // ?apikey= and ?access_token= travel (EventSource sends no headers), so they are never written. Access logs
        // come from HttpLogging instead, with method, path (no query), status and duration only — off unless
        // Logging:LogLevel:Microsoft.AspNetCore.HttpLogging is Information. Every line carries the request's scope
        // (RequestId, TraceId) where the formatter shows scopes (the JSON console in production).
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);
        services.AddHttpLogging(o =>
        {
            o.LoggingFields = Microsoft.AspNetCore.HttpLogging.HttpLoggingFields.RequestMethod
                              | Microsoft.AspNetCore.HttpLogging.HttpLoggingFields.RequestPath
                              | Microsoft.AspNetCore.HttpLogging.HttpLoggingFields.ResponseStatusCode
                              | Microsoft.AspNetCore.HttpLogging.HttpLoggingFields.Duration;
            o.CombineLogs = true;
        });

        services.AddProblemDetails();
        // Malformed JSON bodies are the client's mistake: answer 400 (as ProblemDetails) without logging an exception.
        services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = false);
        // OpenTelemetry: ASP.NET Core's request spans/metrics (query strings redacted by the instrumentation) and the
        // app's own (Telemetry, stream metrics). Exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
        // Npgsql's command tracing stays off: console statements may carry passwords in their text.
        // Without an exporter nothing listens, so the instruments cost (next to) nothing on the REST hot path.
        if (!string.IsNullOrEmpty(config["OTEL_EXPORTER_OTLP_ENDPOINT"]))
            services.AddOpenTelemetry()
                .ConfigureResource(r => r.AddService("dbstudio"))
                .WithTracing(t => t.AddAspNetCoreInstrumentation().AddSource(Telemetry.Name))
                .WithMetrics(m => m.AddAspNetCoreInstrumentation().AddMeter(Telemetry.Name, DbStudio.Core.Streams.ChangeHub.MeterName))
                .UseOtlpExporter();

        services.AddHealthChecks().AddDbContextCheck<PlatformDbContext>("platform-db")
            .AddCheck<DbStudio.Core.Streams.ChangeListenerHealth>("change-listener");
        // One message from the browser carries a UI event with its value (a Data-tab cell, a form field): Blazor's
        // default of 32 KB dropped the connection, and the edit, when a cell was set to a longer text. 4 MB takes the
        // console's longest script and cells of about a million characters; the SQL editor streams its text anyway.
        services.AddRazorComponents().AddInteractiveServerComponents()
            .AddHubOptions(o => o.MaximumReceiveMessageSize = BrowserMessageBytes);
        services.AddCascadingAuthenticationState();
        // Pages challenge with the cookie (a redirect to sign in); the JSON APIs answer 401 instead.
        services.AddAuthentication(o => o.DefaultChallengeScheme = Microsoft.AspNetCore.Identity.IdentityConstants.ApplicationScheme);
        services.ConfigureApplicationCookie(o =>
        {
            o.LoginPath = "/account/login";
            o.Cookie.Name = "dbstudio";
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.Events.OnRedirectToLogin = ctx =>
            {
                if (ctx.Request.Path.StartsWithSegments("/api") || ctx.Request.Path.StartsWithSegments("/db"))
                    ctx.Response.StatusCode = StatusCodes.Status401Unauthorized;
                else ctx.Response.Redirect(ctx.RedirectUri);
                return Task.CompletedTask;
            };
            o.Events.OnRedirectToAccessDenied = ctx =>
            {
                ctx.Response.StatusCode = StatusCodes.Status403Forbidden;
                return Task.CompletedTask;
            };
        });
        services.AddMudServices();
        // supabase-js: /db/{id}/supabase/rest/v1/… is rewritten to the REST API's own paths before routing.
        services.AddSingleton<IStartupFilter, SupabaseRestPaths>();
    }

    /// <summary>
    /// What Core needs from its host (CoreServices.AddDbStudioCore): the platform database's NpgsqlDataSource (owned by the
    /// container), its EF contexts — scoped for request handlers and Identity, a factory for long-lived Blazor circuits and
    /// Core — and Data Protection with its key ring in that database, so every instance (and every test's Core) shares it.
    /// </summary>
    public static IServiceCollection AddPlatformDatabase(this IServiceCollection services, string connectionString, IConfiguration config)
    {
        services.AddSingleton(_ => ProjectServers.PlatformLoginSource(connectionString, "platform"));
        static void Platform(IServiceProvider sp, DbContextOptionsBuilder o) => o.UseNpgsql(sp.GetRequiredService<NpgsqlDataSource>(),
            npg => npg.MigrationsHistoryTable("__ef_migrations", PlatformDbContext.Schema));
        services.AddDbContext<PlatformDbContext>(Platform, optionsLifetime: ServiceLifetime.Singleton);
        services.AddDbContextFactory<PlatformDbContext>(Platform);

        // The key ring lives in the platform database so every instance shares it. Deployments should also
        // encrypt it with a certificate kept outside the database (DataProtection:CertificatePath).
        var dataProtection = services.AddDataProtection().SetApplicationName("DbStudio").PersistKeysToDbContext<PlatformDbContext>();
        var keyRing = config.GetSection(KeyRingOptions.Section).Get<KeyRingOptions>() ?? new KeyRingOptions();
        if (keyRing.CertificatePath is { Length: > 0 } certPath)
            dataProtection.ProtectKeysWithCertificate(System.Security.Cryptography.X509Certificates.X509CertificateLoader
                .LoadPkcs12FromFile(certPath, keyRing.CertificatePassword));
        return services;
    }

    /// <summary>The credential a REST request carries (for its rate limit): the bearer token, else the apikey; at most 128 chars.</summary>
    private static string? CredentialOf(HttpContext ctx)
    {
        var key = RestApi.BearerToken(ctx);
        if (string.IsNullOrEmpty(key)) key = ctx.Request.Headers["apikey"].FirstOrDefault() ?? ctx.Request.Query["apikey"].FirstOrDefault();
        return string.IsNullOrEmpty(key) ? null : key.Length <= 128 ? key : key[..128];
    }

    public static async Task UseDbStudioAsync(this WebApplication app)
    {
        await using (var scope = app.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PlatformDbContext>();
            // A first start has no migrations history table yet, and EF Core finds that out with a failing SELECT that
            // it logs as an error. Look in the catalog first and create the table (IF NOT EXISTS), so a clean start logs
            // nothing at error level.
            await using (var check = app.Services.GetRequiredService<NpgsqlDataSource>()
                             .CreateCommand($"select to_regclass('{PlatformDbContext.Schema}.__ef_migrations') is null"))
                if (await check.ExecuteScalarAsync() is true)
                    await db.Database.ExecuteSqlRawAsync(Microsoft.EntityFrameworkCore.Infrastructure.AccessorExtensions
                        .GetService<Microsoft.EntityFrameworkCore.Migrations.IHistoryRepository>(db).GetCreateIfNotExistsScript());
            await db.Database.MigrateAsync();
        }
        foreach (var server in app.Services.GetRequiredService<ProjectServers>().All)
        {
            await DbStudio.Core.Platform.PlatformLocks.EnsureAsync(server.DataSource);
            await ProjectProvisioner.HardenDatabaseAsync(server.DataSource);
            await DbStudio.Core.Streams.ChangeLog.PrepareServerAsync(server); // the platform's has it from the migrations
            // The platform role keeps no standing membership in project roles (older versions granted it all four).
            await ProjectProvisioner.DropStandingMembershipsAsync(server.DataSource);
        }

        // Each server's project connection budget, unless configured: sized from that server's max_connections.
        var studio = app.Services.GetRequiredService<Microsoft.Extensions.Options.IOptions<DbStudioOptions>>().Value;
        foreach (var server in app.Services.GetRequiredService<ProjectServers>().All)
        {
            if (studio.Rest.MaxConnections > 0 || server.MaxConnections > 0) continue;
            await using var cmd = server.DataSource.CreateCommand(
                "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int");
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            app.Services.GetRequiredService<ServerPools>().For(server).SetBudget(
                ProjectConnectionPool.BudgetFor(r.GetInt32(0), r.GetInt32(1), studio.Limits.ReservedConnections));
        }

        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            StatusCodeSelector = ex => ex switch
            {
                BadHttpRequestException bad => bad.StatusCode,
                // PostgreSQL unreachable or restarting: a retryable 503, not a 500.
                NpgsqlException and not PostgresException or PostgresException { SqlState: ['5', '7', 'P', ..] or ['0', '8', ..] } =>
                    StatusCodes.Status503ServiceUnavailable,
                _ => StatusCodes.Status500InternalServerError,
            },
        });
        app.UseStatusCodePages();
        app.UseHttpLogging();
        app.UseCors();
        app.UseWebSockets(); // supabase-js realtime
        app.UseRateLimiter();
        app.UseRegistrationLimit();
        app.UseAntiforgery();
        app.MapStaticAssets();

        app.MapHealthChecks("/healthz");
        app.MapPlatformAuthApi(); // /api/auth/register and /login, in place of MapIdentityApi's
        app.MapGroup("/api/auth").MapIdentityApi<PlatformUser>().WithTags("Platform accounts");
        app.MapAccountEndpoints();
        app.MapProjectsApi();
        app.MapAccessApi();
        app.MapFunctionAccessApi();
        app.MapCsvApi();
        app.MapAssistantApi();
        app.MapRestApi();
        app.MapRpcApi();
        app.MapStreamApi();
        app.MapEndUserAuthApi();
        app.MapGoTrueApi();
        app.MapRealtimeApi();

        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
    }
}

/// <summary>Settings bound from configuration section "DataProtection": the certificate that encrypts the key ring.</summary>
public sealed class KeyRingOptions
{
    public const string Section = "DataProtection";
    /// <summary>A PKCS#12 file kept outside the database; none: the key ring is stored unencrypted.</summary>
    public string? CertificatePath { get; set; }
    public string? CertificatePassword { get; set; }
}

/// <summary>Stops the embedded cluster when the app shuts down.</summary>
internal sealed class EmbeddedClusterStopper(LocalCluster cluster) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => cluster.StopAsync();
}
