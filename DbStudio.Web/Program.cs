using DbStudio.Web.Hosting;

if (args.Contains("--healthcheck"))
    return await HealthProbe.RunAsync(Environment.GetEnvironmentVariable("HEALTHCHECK_URL") ?? "http://127.0.0.1:8080/healthz");

var builder = WebApplication.CreateBuilder(args);
try
{
    await builder.AddDbStudioAsync();
}
catch (DbStudio.Core.Postgres.PgBinariesNotFoundException e)
{
    Console.Error.WriteLine(e.Message);
    return 1;
}

var app = builder.Build();
await app.UseDbStudioAsync();
app.Run();
return 0;
