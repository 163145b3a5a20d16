using DbStudio.Web.Hosting;

var builder = WebApplication.CreateBuilder(args);
await builder.AddDbStudioAsync();

var app = builder.Build();
await app.UseDbStudioAsync();
app.Run();
